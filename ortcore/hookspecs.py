"""The plugin contract: every hook a plugin may implement, in one place.

A plugin is a module (or object) named by an entry point in the group
``ortcore``, for example in its ``pyproject.toml``::

    [project.entry-points.ortcore]
    myprovider = "my_package.plugin"

The module implements any of the hooks below with the ``ortcore.hookimpl``
marker. Hooks are called lazily, when a session or a CLI command first needs
the plugin manager, never at ``import ortcore``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ortcore.kernels import KernelRegistry
    from ortcore.provider import ExecutionProvider

PROJECT = "ortcore"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ortcore_execution_providers() -> list[type[ExecutionProvider]]:
    """Contribute execution provider classes.

    Called once per plugin manager, when providers are first listed. Return a
    list of :class:`ortcore.provider.ExecutionProvider` subclasses (classes,
    not instances: a session instantiates the ones the user asks for with the
    user's provider options). A provider whose device is absent still returns
    its class; its ``availability()`` says why it cannot run.
    """


@hookspec
def ortcore_kernels(provider: str) -> KernelRegistry | None:
    """Contribute kernels to the provider named ``provider``.

    Called once per provider instance, when a session creates it, with the
    provider's name (``"CPUExecutionProvider"``...). Return a
    :class:`ortcore.kernels.KernelRegistry` holding extra kernels for that
    provider (custom ops, or standard ops the provider lacks), or ``None``.
    Kernels from plugins are looked up after the provider's own ones.
    """


@hookspec
def ortcore_op_schemas() -> list[Any]:
    """Contribute operator schemas for custom domains.

    Called once per plugin manager. Return ``onnx.defs.OpSchema`` objects;
    ortcore registers them with ``onnx.defs`` so that onnx's checker and shape
    inference accept models using them.
    """


@hookspec
def ortcore_graph_passes() -> list[Any]:
    """Contribute graph optimizer passes.

    Called once per plugin manager. Return pass objects (see
    ``ortcore.optimizer.GraphPass``); each declares the optimization level at
    which it runs and is applied after the built-in passes of that level.
    """
