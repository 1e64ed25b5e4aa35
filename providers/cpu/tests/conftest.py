"""Fixtures shared by the CPU provider's kernel tests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture
def record_loops(monkeypatch):
    """``switch(on, module)``: compiled loops on or off for the sessions a test creates next.

    Returns ``SimpleNamespace(on, calls)``; ``calls`` collects the names of the
    compiled loops from ``module`` that kernels call. The spy wraps what
    ``jit.loop`` returns, so the real compiled loop still computes the result,
    and a test of the compiled path cannot pass on the numpy path.
    """
    from ortcore_cpu import jit

    def switch(on: bool, module) -> SimpleNamespace:
        monkeypatch.setenv(jit.ENV, "1" if on else "0")
        if on and not jit.enabled():
            pytest.skip(f"compiled loops unavailable: {jit.status()[1]}")
        calls: list[str] = []
        pick = jit.loop

        def recording_loop(fn):
            compiled = pick(fn)
            if compiled is None or fn.__module__ != module.__name__:
                return compiled

            def recorded(*args):
                calls.append(fn.__name__)
                return compiled(*args)

            return recorded

        monkeypatch.setattr(jit, "loop", recording_loop)
        if module.__name__.endswith("._conv_loops"):  # the conv GEMM engine is recorded as "gemm"
            engine = jit.gemm_engine

            class Recorded:
                """The engine, its calls recorded; its other attributes (threads, parallel) are the engine's."""

                def __init__(self, compiled):
                    self.compiled = compiled

                def __call__(self, *args):
                    calls.append("gemm")
                    return self.compiled(*args)

                def gathered(self, *args):
                    calls.append("implicit_gemm")
                    return self.compiled.gathered(*args)

                def __getattr__(self, name):
                    return getattr(self.compiled, name)

            def recording_engine():
                compiled = engine()
                return None if compiled is None else Recorded(compiled)

            monkeypatch.setattr(jit, "gemm_engine", recording_engine)
        return SimpleNamespace(on=on, calls=calls)

    return switch
