"""Discovering plugins through the ``simclr`` entry-point group and running their hooks.

Each entry point is loaded and registered on its own, so a plugin that fails to import or to register is reported
and the others keep working (pluggy's ``load_setuptools_entrypoints`` would abort on the first failure).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import logging
import os
import traceback
from dataclasses import dataclass, field
from typing import Any

import pluggy

from simclr import hookspecs
from simclr.errors import PluginError, SimCLRError, TrainingError
from simclr.registry import KINDS, Component, NameClash, Provider, Registrar, Registry, source_line

ENTRY_POINT_GROUP = "simclr"
DISABLE_ENV = "SIMCLR_DISABLE_PLUGINS"
#: the distribution of the built-in plugins; they load first, so they keep their component names
BUILTIN_DISTRIBUTION = "simclr"
log = logging.getLogger("simclr")


def names_disabled_by_env() -> set[str]:
    """Plugin (entry-point) names listed, comma-separated, in SIMCLR_DISABLE_PLUGINS."""
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _provider(entry_point: importlib.metadata.EntryPoint) -> Provider:
    dist = entry_point.dist
    if dist is None:
        return Provider(entry_point.name, "unknown", "?")
    return Provider(entry_point.name, dist.metadata["Name"], dist.version)


def _short_error(exc: BaseException) -> str:
    """The error on one line, with the place in the plugin's code it comes from: the last frame outside Python's
    import machinery, pluggy and this module (a SyntaxError's own file and line)."""
    if isinstance(exc, pluggy.PluginValidationError):  # names the hook and the plugin's definition of it
        return hook_mismatch(exc)
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"SyntaxError: {exc.msg} (at {exc.filename}:{exc.lineno})"
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if not _machinery(frame.filename)]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _machinery(filename: str) -> bool:
    if filename.startswith("<frozen") or f"{os.sep}importlib{os.sep}" in filename or filename == __file__:
        return True
    return os.path.dirname(os.path.abspath(filename)) == os.path.dirname(os.path.abspath(pluggy.__file__))


def hook_mismatch(exc: pluggy.PluginValidationError) -> str:
    """pluggy's message that a hook implementation does not fit its hook, on one line, without pluggy's internal
    name for the plugin and with the implementation's file and line: ``hook 'simclr_on_log'; hookimpl
    definition: simclr_on_log(run, rec); ... (at mod.py:3)``."""
    text = str(exc)
    where = ""
    if text.startswith("Plugin ") and " for hook " in text:
        text = "hook " + text.split(" for hook ", 1)[1]
        defined = source_line(getattr(exc.plugin, text.split("'")[1], None))
        where = f" (at {defined})" if defined else ""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) + where


@dataclass
class PluginSystem:
    """The pluggy manager with every loaded plugin, and the registry they filled."""

    manager: pluggy.PluginManager
    registry: Registry
    #: pluggy name of each registered plugin or object -> how warnings about it name it
    labels: dict[str, str] = field(default_factory=dict)
    _reported: set[str] = field(default_factory=set)

    def call_lifecycle(self, hook_name: str, strict: bool = False, **kwargs: Any) -> None:
        """Call every implementation of a lifecycle hook. One that raises is reported once (by plugin name)
        and skipped afterwards, unless ``strict``, in which case the error propagates."""
        hook = getattr(self.manager.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as exc:
                who = self.labels.get(impl.plugin_name, f"plugin '{impl.plugin_name}'")
                if strict:
                    raise TrainingError(f"{who} raised in {hook_name} (--strict): {_short_error(exc)}") from exc
                if impl.plugin_name not in self._reported:
                    self._reported.add(impl.plugin_name)
                    log.warning("%s raised in %s and is ignored: %s", who, hook_name, _short_error(exc))

    def register_object(self, obj: Any, name: str, label: str | None = None) -> None:
        """Register a callback object (built from a config) so its lifecycle hooks are called. ``name`` must be
        unique among registered plugins; ``label`` is how warnings name the object, e.g.
        ``callback 'plots' (from train.callbacks)``. A hook method that would never be called (not marked with
        ``@simclr.hookimpl``, or not named after a lifecycle hook) is warned about."""
        self.labels[name] = label or f"callback object '{name}'"
        for problem in hook_problems(self.manager, obj):
            log.warning("%s: %s", self.labels[name], problem)
        self.manager.register(obj, name=name)

    def check_hooks(self, obj: Any, label: str) -> None:
        """Raise :class:`PluginError` when pluggy would refuse ``obj``'s hook implementations (a hook method whose
        arguments are not the hook's): checked where a callback is built, before a run writes anything, rather
        than when the run starts; on a manager of its own, as pluggy keeps what it could register of a refused
        object. ``label`` names the object and where it comes from."""
        try:
            new_manager().register(obj)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{label}: {hook_mismatch(exc)}") from None


LIFECYCLE_HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("simclr_on_"))
#: every hook a plugin module may implement: the registration hooks and the lifecycle hooks
PLUGIN_HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("simclr_"))


def hook_problems(manager: pluggy.PluginManager, obj: Any, hooks: list[str] = LIFECYCLE_HOOKS) -> list[str]:
    """Why some of ``obj``'s ``simclr_*`` functions or methods would never be called, or why it would do nothing
    at all; ``hooks`` are the hooks ``obj`` may implement (a callback object: the lifecycle hooks)."""
    what = "lifecycle hook" if hooks == LIFECYCLE_HOOKS else "hook"
    problems, implemented = [], 0
    for attr in sorted(dir(obj)):
        opts = manager.parse_hookimpl_opts(obj, attr) if not attr.startswith("__") else None
        hook = (opts.get("specname") or attr) if opts is not None else attr  # @hookimpl(specname=...) renames
        if opts is not None and hook in hooks:
            implemented += 1
        elif opts is None and hook in hooks:
            problems.append(f"{attr} is not marked with @simclr.hookimpl, so it is never called; decorate it")
        elif opts is not None and not opts.get("optionalhook"):  # optionalhook: a hook of a later simclr
            close = difflib.get_close_matches(hook, hooks, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the hooks are {', '.join(hooks)}"
            problems.append(f"{hook} is not a {what}, so it is never called; {hint}")
    if not implemented and not problems:
        problems.append(
            f"it has no {what}, so it does nothing; give it functions named {', '.join(hooks)} marked with "
            "@simclr.hookimpl"
        )
    return problems


def new_manager() -> pluggy.PluginManager:
    """A pluggy manager that knows simclr's hooks, with no plugin registered."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def _load_order(candidate: tuple[importlib.metadata.EntryPoint, Provider]) -> tuple[bool, str, str]:
    entry_point, provider = candidate
    return provider.distribution != BUILTIN_DISTRIBUTION, entry_point.name, provider.distribution


def load_plugins(entry_points: list[importlib.metadata.EntryPoint] | None = None) -> PluginSystem:
    """Load every plugin of the ``simclr`` entry-point group, isolating failures.

    Load order: the built-in plugins (distribution ``simclr``) first, then the others by entry-point name, then
    distribution name. A plugin registers all its components or none: one that registers a kind and name an
    earlier plugin already registered is rejected whole and reported, so built-ins keep their names and, between
    two third-party plugins, the first loaded keeps the name. An entry-point name that another distribution's
    plugin also uses is reported for each: a built-in keeps its name, but between third-party distributions
    none is loaded, rather than whichever sorts first (installing a package would otherwise silently replace
    the components of one that worked).
    """
    manager = new_manager()
    registry = Registry()
    system = PluginSystem(manager, registry)
    if entry_points is None:
        entry_points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    blocked = names_disabled_by_env()
    candidates = sorted(((ep, _provider(ep)) for ep in entry_points), key=_load_order)
    claimants: dict[str, set[str]] = {}
    for entry_point, provider in candidates:
        if entry_point.name not in blocked:
            claimants.setdefault(entry_point.name, set()).add(provider.distribution)
    seen: set[Provider] = set()
    owners: dict[str, Provider] = {}
    for entry_point, provider in candidates:
        if entry_point.name in blocked and provider not in seen:
            registry.disabled.append(str(provider))
        if entry_point.name in blocked or provider in seen:
            seen.add(provider)
            continue
        seen.add(provider)
        rivals = claimants[entry_point.name] - {provider.distribution}
        if rivals and BUILTIN_DISTRIBUTION not in claimants[entry_point.name]:
            error = PluginError(
                f"plugin name '{entry_point.name}' is used by the distributions "
                f"{', '.join(sorted(claimants[entry_point.name]))}, so none of them is loaded"
            )
            hint = f"uninstall all but one, e.g. pip uninstall {' '.join(sorted(rivals))}"
            registry.failures.append(_failure(provider, "import", error, hint))
            continue
        owner = owners.setdefault(entry_point.name, provider)
        if owner != provider:
            error = PluginError(f"plugin name '{entry_point.name}' is already taken by {owner}")
            hint = f"uninstall {provider.distribution} ({DISABLE_ENV}={entry_point.name} would disable both)"
            registry.failures.append(_failure(provider, "import", error, hint))
            continue
        try:
            plugin = entry_point.load()
            manager.register(plugin, name=entry_point.name)
        except Exception as exc:
            failure = _failure(provider, "import", exc)
            failure["error"] += f" (entry point '{entry_point.name} = {entry_point.value}')"
            registry.failures.append(failure)
            continue
        added: list[Component] = []
        try:
            for kind, spec in KINDS.items():
                for impl in getattr(manager.hook, spec.hook).get_hookimpls():
                    if impl.plugin_name == entry_point.name:
                        impl.function(**{name: Registrar(kind, provider, added) for name in impl.argnames})
            registry.add_plugin(added)
        except Exception as exc:
            manager.unregister(name=entry_point.name)
            failure = _failure(provider, "registration", exc)
            registry.failures.append(failure)
            registry.reject(added, f"{provider} failed to register: {failure['error']}")
            continue
        system.labels[entry_point.name] = str(provider)
        if warns_of_plugins():
            for problem in hook_problems(manager, plugin, PLUGIN_HOOKS):
                log.warning("%s: %s", provider, problem)
    return system


#: set by `simclr train --nproc` for the processes it starts, which would repeat its own warnings
PLUGINS_CHECKED_ENV = "SIMCLR_PLUGINS_CHECKED"


def warns_of_plugins() -> bool:
    """Whether this process reports plugin problems: one process per machine (torchrun's local rank 0, which
    has its own installed plugins), and not a process whose launcher on this machine already did."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and not os.environ.get(PLUGINS_CHECKED_ENV)


def warn_of_plugin_failures() -> None:
    """A warning for each plugin that failed to load, before a command builds components: otherwise a run
    meant to use (or override) one of its components would quietly use what is installed instead."""
    if not warns_of_plugins():
        return
    for failure in plugin_system().registry.failures:
        log.warning(
            "plugin '%s' (distribution %s) failed to load, so its components are not available: %s (%s)",
            failure["plugin"],
            failure["distribution"],
            failure["error"],
            failure["hint"],
        )


def _failure(provider: Provider, stage: str, exc: BaseException, hint: str = "") -> dict[str, str]:
    log.debug("plugin %s failed at %s", provider.plugin, stage, exc_info=exc)
    return {
        "plugin": provider.plugin,
        "distribution": f"{provider.distribution} {provider.version}",
        "stage": stage,
        "error": str(exc) if isinstance(exc, SimCLRError) else _short_error(exc),
        "hint": hint or _hint(provider, exc),
    }


def _hint(provider: Provider, exc: BaseException) -> str:
    if isinstance(exc, NameClash):
        return (
            f"uninstall one, or set {DISABLE_ENV}={provider.plugin} to skip this plugin "
            f"({DISABLE_ENV}={exc.registered.provider.plugin} to load this one instead)"
        )
    return f"fix or uninstall {provider.distribution}, or set {DISABLE_ENV}={provider.plugin}"


_system: PluginSystem | None = None


def plugin_system() -> PluginSystem:
    """The process-wide plugin system, loaded on first use."""
    global _system
    if _system is None:
        _system = load_plugins()
    return _system
