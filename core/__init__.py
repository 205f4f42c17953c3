"""simclr: a plugin-based SimCLR framework.

Public API: :func:`create` builds a validated component, :func:`available` lists installed ones,
:func:`names` lists names of one kind, :data:`hookimpl` marks a plugin's hook implementations.
"""

from __future__ import annotations

from typing import Any

from simclr.errors import ConfigError, PluginError, SimCLRError, TrainingError, UserError
from simclr.hookspecs import hookimpl
from simclr.registry import KINDS, NoParams

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "ComponentRef",
    "ConfigError",
    "NoParams",
    "PluginError",
    "SimCLRError",
    "TrainingError",
    "UserError",
    "available",
    "create",
    "hookimpl",
    "names",
    "plugin_failures",
]


def create(kind: str, name: str, *context: Any, **params: Any) -> Any:
    """Build component ``name`` of ``kind`` from ``params`` (validated by its params model).

    ``context`` is what the kind's factory needs besides its params: the image size for a backbone, the model
    for an optimizer (see ``simclr.KINDS``).
    """
    from simclr.plugin_manager import plugin_system

    component = plugin_system().registry.get(kind, name)
    return component.build(component.validate(params, path=kind), *context)


def available(kind: str | None = None) -> list[dict[str, Any]]:
    """Every installed component (or those of one kind): name, kind, plugin, distribution, version,
    description and params JSON schema."""
    from simclr.plugin_manager import plugin_system

    registry = plugin_system().registry
    kinds = [kind] if kind else list(KINDS)
    return [registry.get(k, n).describe() for k in kinds for n in registry.names(k)]


def names(kind: str) -> list[str]:
    """Names of the installed components of ``kind``."""
    from simclr.plugin_manager import plugin_system

    return plugin_system().registry.names(kind)


def plugin_failures() -> list[dict[str, str]]:
    """Plugins that failed to import or register, with their error and how to disable them."""
    from simclr.plugin_manager import plugin_system

    return list(plugin_system().registry.failures)


class ComponentRef:
    """Annotation for a params field naming another component: ``miner: Annotated[str, ComponentRef("miner")]``.

    Validates that the name is installed, with a 'did you mean' hint otherwise.
    """

    def __init__(self, kind: str):
        self.kind = kind

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def _check(self, value: str) -> str:
        from simclr.plugin_manager import plugin_system

        if value not in names(self.kind):
            raise ValueError(plugin_system().registry.unknown(self.kind, value))
        return value
