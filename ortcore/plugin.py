"""Plugin discovery through the ``ortcore`` entry-point group.

:func:`get_plugin_manager` loads every installed plugin once (per set of
disabled names) and records, for each, whether it loaded and why not. A plugin
that fails to import or whose hooks raise is logged and reported by
``ortcore providers``; it never breaks a session that does not need it.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ortcore import hookspecs
from ortcore.errors import EPFail

__all__ = [
    "ENTRY_POINT_GROUP",
    "DISABLE_ENV",
    "PluginInfo",
    "ProviderInfo",
    "PluginManager",
    "get_plugin_manager",
    "register_plugin",
    "unregister_plugin",
]

log = logging.getLogger("ortcore.plugin")

ENTRY_POINT_GROUP = "ortcore"
DISABLE_ENV = "ORTCORE_DISABLE_PLUGINS"


@dataclass
class PluginInfo:
    """What discovery learned about one plugin."""

    name: str
    source: str
    distribution: str | None = None
    version: str | None = None
    loaded: bool = False
    disabled: bool = False
    error: str | None = None
    providers: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.disabled:
            return "disabled"
        return "loaded" if self.loaded and not self.error else "failed"


@dataclass
class ProviderInfo:
    """An execution provider class contributed by a plugin, and whether it can run here."""

    name: str
    cls: type
    plugin: PluginInfo
    available: bool
    reason: str
    fallback: bool = False


_extra_plugins: dict[str, Any] = {}
_lock = threading.Lock()


def register_plugin(plugin: Any, name: str) -> None:
    """Add an in-process plugin object (as if it came from an entry point)."""
    with _lock:
        _extra_plugins[name] = plugin
        _discover.cache_clear()


def unregister_plugin(name: str) -> None:
    with _lock:
        _extra_plugins.pop(name, None)
        _discover.cache_clear()


def _disabled_from_env() -> frozenset[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus what discovery learned (plugins, providers)."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.plugin_infos: dict[str, PluginInfo] = {}
        self._providers: dict[str, ProviderInfo] | None = None
        self._providers_lock = threading.Lock()

    # Each hook implementation is called on its own so that one failing plugin
    # is recorded against that plugin and the others still contribute.
    def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[PluginInfo, Any]]:
        results = []
        for impl in reversed(getattr(self.hook, hook_name).get_hookimpls()):
            info = self.plugin_infos[impl.plugin_name]
            try:
                value = impl.function(**kwargs)
            except Exception as exc:  # noqa: BLE001 - a plugin must not break others
                info.error = f"hook {hook_name} raised {type(exc).__name__}: {exc}"
                log.warning("ortcore plugin %r failed: %s", info.name, info.error)
                continue
            if value is not None:
                results.append((info, value))
        return results

    def providers(self) -> dict[str, ProviderInfo]:
        """All contributed providers by name, in discovery order, with availability."""
        with self._providers_lock:
            if self._providers is None:
                self._providers = self._collect_providers()
            return self._providers

    def _collect_providers(self) -> dict[str, ProviderInfo]:
        found: dict[str, ProviderInfo] = {}
        for info, classes in self.call_each("ortcore_execution_providers"):
            for cls in classes:
                try:
                    available, reason = cls.availability()
                except Exception as exc:  # noqa: BLE001 - a broken driver is "unavailable"
                    available, reason = False, f"availability check raised {type(exc).__name__}: {exc}"
                if not available:
                    log.warning("execution provider %s is unavailable: %s", cls.name, reason)
                if cls.name in found:
                    log.warning(
                        "execution provider %s from plugin %r ignored: already provided by %r",
                        cls.name, info.name, found[cls.name].plugin.name,
                    )
                    continue
                info.providers.append(cls.name)
                found[cls.name] = ProviderInfo(
                    cls.name, cls, info, bool(available), reason or "", bool(getattr(cls, "fallback", False))
                )
        return found

    def provider_class(self, name: str) -> type:
        """The class of an available provider, or EPFail saying why it cannot be used."""
        providers = self.providers()
        info = providers.get(name)
        if info is None:
            from ortcore.errors import did_you_mean

            known = ", ".join(providers) or "none"
            failed = [p for p in self.plugin_infos.values() if p.error]
            hint = "".join(f"; plugin {p.name!r} failed: {p.error}" for p in failed)
            raise EPFail(
                f"execution provider {name!r} is not installed{did_you_mean(name, providers)} "
                f"(installed: {known}){hint}"
            )
        if not info.available:
            raise EPFail(f"execution provider {name!r} is unavailable: {info.reason}")
        return info.cls

    def extra_kernels(self, provider: str) -> list[Any]:
        return [reg for _, reg in self.call_each("ortcore_kernels", provider=provider)]

    def graph_passes(self) -> list[Any]:
        return [p for _, passes in self.call_each("ortcore_graph_passes") for p in passes]

    def op_schemas(self) -> list[Any]:
        return [s for _, schemas in self.call_each("ortcore_op_schemas") for s in schemas]


def _distribution_of(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


@functools.lru_cache(maxsize=8)
def _discover(disabled: frozenset[str]) -> PluginManager:
    pm = PluginManager()
    candidates: list[tuple[str, str, Any]] = []
    seen: set[str] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(ep.name)
        candidates.append((ep.name, ep.value, ep))
    candidates.extend((name, repr(obj), obj) for name, obj in _extra_plugins.items())

    for name, source, target in candidates:
        info = PluginInfo(name=name, source=source)
        if isinstance(target, metadata.EntryPoint):
            info.distribution, info.version = _distribution_of(target)
        pm.plugin_infos[name] = info
        if name in disabled or (info.distribution and info.distribution in disabled):
            info.disabled = True
            continue
        try:
            plugin = target.load() if isinstance(target, metadata.EntryPoint) else target
            pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - report, never crash discovery
            info.error = f"{type(exc).__name__}: {exc}"
            log.warning("ortcore plugin %r (%s) failed to load: %s", name, source, info.error)
            continue
        info.loaded = True
    return pm


def get_plugin_manager(disabled: Iterable[str] = ()) -> PluginManager:
    """The plugin manager with every installed plugin except the disabled ones.

    ``disabled`` names entry points or distributions; the environment variable
    ``ORTCORE_DISABLE_PLUGINS`` (comma-separated) adds to it. The result is
    cached per set of disabled names.
    """
    return _discover(frozenset(disabled) | _disabled_from_env())
