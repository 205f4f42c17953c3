"""Discovering plugins through the ``simclr`` entry-point group and running their hooks.

Each entry point is loaded and registered on its own, so a plugin that fails to import or to register is reported
and the others keep working (pluggy's ``load_setuptools_entrypoints`` would abort on the first failure).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import traceback
from dataclasses import dataclass, field
from typing import Any

import pluggy

from simclr import hookspecs
from simclr.errors import SimCLRError, TrainingError
from simclr.registry import KINDS, Component, Provider, Registrar, Registry

ENTRY_POINT_GROUP = "simclr"
DISABLE_ENV = "SIMCLR_DISABLE_PLUGINS"
log = logging.getLogger("simclr")


def disabled_plugins() -> set[str]:
    """Plugin (entry-point) names listed, comma-separated, in SIMCLR_DISABLE_PLUGINS."""
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _provider(entry_point: importlib.metadata.EntryPoint) -> Provider:
    dist = entry_point.dist
    if dist is None:
        return Provider(entry_point.name, "unknown", "?")
    return Provider(entry_point.name, dist.metadata["Name"], dist.version)


def _short_error(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {frame[0].filename}:{frame[0].lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


@dataclass
class PluginSystem:
    """The pluggy manager with every loaded plugin, and the registry they filled."""

    manager: pluggy.PluginManager
    registry: Registry
    providers: dict[str, Provider] = field(default_factory=dict)
    _reported: set[str] = field(default_factory=set)

    def call_lifecycle(self, hook_name: str, strict: bool = False, **kwargs: Any) -> None:
        """Call every implementation of a lifecycle hook. One that raises is reported once (by plugin name)
        and skipped afterwards, unless ``strict``, in which case the error propagates."""
        hook = getattr(self.manager.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as exc:
                provider = self.providers.get(impl.plugin_name)
                who = str(provider) if provider else f"plugin '{impl.plugin_name}'"
                if strict:
                    raise TrainingError(f"{who} raised in {hook_name} (--strict): {_short_error(exc)}") from exc
                if impl.plugin_name not in self._reported:
                    self._reported.add(impl.plugin_name)
                    log.warning("%s raised in %s and is ignored: %s", who, hook_name, _short_error(exc))

    def register_object(self, obj: Any, name: str) -> None:
        """Register a callback object (built from a config) so its lifecycle hooks are called."""
        self.manager.register(obj, name=name)
        self.providers.setdefault(name, Provider(name, "config callback", ""))


def load_plugins(entry_points: list[importlib.metadata.EntryPoint] | None = None) -> PluginSystem:
    """Load every plugin of the ``simclr`` entry-point group, isolating failures."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    registry = Registry()
    system = PluginSystem(manager, registry)
    if entry_points is None:
        entry_points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    blocked = disabled_plugins()
    seen: set[str] = set()
    for entry_point in sorted(entry_points, key=lambda ep: ep.name):
        provider = _provider(entry_point)
        if entry_point.name in blocked or entry_point.name in seen:
            continue
        seen.add(entry_point.name)
        try:
            plugin = entry_point.load()
            manager.register(plugin, name=entry_point.name)
        except Exception as exc:
            registry.failures.append(_failure(provider, "import", exc))
            continue
        system.providers[entry_point.name] = provider
        added: list[Component] = []
        try:
            for kind, spec in KINDS.items():
                for impl in getattr(manager.hook, spec.hook).get_hookimpls():
                    if impl.plugin_name == entry_point.name:
                        impl.function(**{name: Registrar(kind, provider, added) for name in impl.argnames})
        except Exception as exc:
            manager.unregister(name=entry_point.name)
            registry.failures.append(_failure(provider, "registration", exc))
            continue
        for component in added:
            registry.add(component)
    for (kind, name), providers in registry.conflicts.items():
        registry.failures.append(
            {
                "plugin": ", ".join(p.plugin for p in providers),
                "distribution": ", ".join(f"{p.distribution} {p.version}" for p in providers),
                "stage": "registration",
                "error": f"{kind} '{name}' is registered by " + " and by ".join(str(p) for p in providers),
                "hint": f"uninstall one, or set {DISABLE_ENV}=<plugin> to disable one",
            }
        )
    return system


def _failure(provider: Provider, stage: str, exc: BaseException) -> dict[str, str]:
    log.debug("plugin %s failed at %s", provider.plugin, stage, exc_info=exc)
    error = str(exc) if isinstance(exc, SimCLRError) else _short_error(exc)
    return {
        "plugin": provider.plugin,
        "distribution": f"{provider.distribution} {provider.version}",
        "stage": stage,
        "error": error,
        "hint": f"fix or uninstall {provider.distribution}, or set {DISABLE_ENV}={provider.plugin}",
    }


_system: PluginSystem | None = None


def plugin_system() -> PluginSystem:
    """The process-wide plugin system, loaded on first use."""
    global _system
    if _system is None:
        _system = load_plugins()
    return _system


def reset_plugins() -> None:
    """Forget loaded plugins (after installing or disabling one in the running process)."""
    global _system
    _system = None
