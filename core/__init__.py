"""simclr: a plugin-based SimCLR framework.

Public API: :func:`create` builds a validated component, :func:`create_ref` one named by a :class:`ComponentRef`
field (:data:`DataPath` types a path param), :func:`available` lists installed ones, :func:`names` lists names of
one kind, :data:`hookimpl` marks a plugin's hook implementations, which receive a :class:`Registrar` (registration
hooks) or a :class:`RunContext` (lifecycle hooks).
"""

from __future__ import annotations

import datetime
import importlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationError
from pydantic_core import PydanticCustomError

from simclr.errors import (
    COMPONENT_REF_ERROR,
    COMPONENT_REF_SCHEMA_KEY,
    ConfigError,
    PluginError,
    SimCLRError,
    TrainingError,
    UserError,
)
from simclr.hookspecs import RunContext, hookimpl
from simclr.registry import CHECKING_DEFAULTS, KINDS, NoParams, Registrar

if TYPE_CHECKING:
    from simclr.pretrained import Pretrained

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "ComponentRef",
    "ConfigError",
    "DataPath",
    "NoParams",
    "PluginError",
    "Registrar",
    "RunContext",
    "SimCLRError",
    "TrainingError",
    "UserError",
    "available",
    "component_label",
    "create",
    "create_ref",
    "disabled_plugins",
    "hookimpl",
    "load_pretrained",
    "names",
    "plugin_failures",
]


#: submodules of the plugin API reachable as attributes after a plain ``import simclr`` (imported on first use,
#: so that ``import simclr`` alone does not import torch)
PLUGIN_API_MODULES = ("data",)


def __getattr__(name: str) -> ModuleType:
    if name in PLUGIN_API_MODULES:
        return importlib.import_module(f"simclr.{name}")
    raise AttributeError(f"module 'simclr' has no attribute {name!r}")


def create(kind: str, name: str, *context: Any, **params: Any) -> Any:
    """Build component ``name`` of ``kind`` from ``params`` (validated by its params model).

    ``context`` is what the kind's factory needs besides its params: the image size for a backbone, the model
    for an optimizer (see ``simclr.KINDS``).
    """
    from simclr.plugin_manager import plugin_system

    component = plugin_system().registry.get(kind, name)
    return component.build(component.validate(params, path=kind), *context)


def create_ref(kind: str, ref: str | dict[str, Any], *context: Any) -> Any:
    """Build the component a :class:`ComponentRef` field holds: a name, or ``{name: ..., <params>}``."""
    name, params = _split_ref(ref)
    return create(kind, name, *context, **params)


def _split_ref(ref: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(ref, str):
        return ref, {}
    if not isinstance(ref.get("name"), str):
        raise ValueError("a component given as a mapping needs a name, e.g. {name: semi_hard}")
    return ref["name"], {key: value for key, value in ref.items() if key != "name"}


def available(kind: str | None = None) -> list[dict[str, Any]]:
    """Every installed component (or those of one kind): name, kind, plugin, distribution, version,
    description and params JSON schema."""
    from simclr.plugin_manager import plugin_system

    registry = plugin_system().registry
    kinds = [kind] if kind else list(KINDS)
    return [registry.get(k, n).describe() for k in kinds for n in registry.names(k)]


def component_label(kind: str, name: str) -> str:
    """How messages name the component ``name`` of ``kind``, with its plugin and distribution:
    ``miner 'mine' from plugin 'acme' (distribution simclr-plugin-acme 1.0)``; ``miner 'mine'`` when none is
    installed under that name."""
    from simclr.plugin_manager import plugin_system

    registry = plugin_system().registry
    return registry.get(kind, name).label if name in registry.names(kind) else f"{kind} '{name}'"


def names(kind: str) -> list[str]:
    """Names of the installed components of ``kind``."""
    from simclr.plugin_manager import plugin_system

    return plugin_system().registry.names(kind)


def load_pretrained(target: str | Path, device: str = "cpu") -> Pretrained:
    """The trained network of a run directory or checkpoint file, in eval mode on ``device``, as a
    :class:`simclr.pretrained.Pretrained`: ``.features(uint8 images)`` gives the backbone's features the way
    `simclr eval` computes them; ``.model``, ``.image_size``, ``.mean``/``.std``, ``.epoch`` and ``.experiment``."""
    from simclr.pretrained import load_pretrained as load

    return load(target, device)


def plugin_failures() -> list[dict[str, str]]:
    """Plugins that failed to import or register, with their error and how to disable them."""
    from simclr.plugin_manager import plugin_system

    return list(plugin_system().registry.failures)


def disabled_plugins() -> list[str]:
    """Installed plugins that SIMCLR_DISABLE_PLUGINS turned off, e.g. ``plugin 'x' (distribution y 1.0)``."""
    from simclr.plugin_manager import plugin_system

    return list(plugin_system().registry.disabled)


#: what YAML reads some unquoted paths as instead of text (bool before int: True is an int too)
NOT_TEXT = (
    (bool, "true/false (unquoted yes, no, on and off are)"),
    (int | float, "a number"),
    (datetime.date, "a date"),
    (dict, "a mapping (': ' inside it)"),
    (list, "a list"),
    (type(None), "null (an empty value, or ~ alone; the home folder is ~/)"),
)


def _path_text(value: Any) -> Any:
    """A path must be text. An empty one would be the folder simclr runs in (``Path("")`` is ``.``): with
    ``--set key=`` that read every image below it, a run's own plots included. YAML reads some unquoted folder
    names as other things (``2024`` a number, ``no`` a boolean, ``2024-01-05`` a date, ``a: b`` a mapping), and
    pydantic would only say the input is not a path."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("an empty path; give a folder ('.' for the one simclr runs in)")
    for kind, read_as in NOT_TEXT:
        if isinstance(value, kind):
            raise ValueError(
                f"YAML read this path as {read_as}: {value!r}, not text; quote the folder name as written: "
                "'NAME' in a YAML file, --set 'KEY=\"NAME\"' on the command line"
            )
    return value


#: the type of a params field holding a path (a dataset's folder): ``~`` is expanded, as a YAML file or
#: ``--set key=~/data`` passes it on unexpanded; a relative path stays relative to the folder simclr runs in;
#: an empty one is an error
DataPath = Annotated[Path, BeforeValidator(_path_text), AfterValidator(Path.expanduser)]


class ComponentRef:
    """Annotation for a params field naming another component, by name or with its params:
    ``miner: Annotated[str | dict[str, Any], ComponentRef("miner")]`` accepts ``semi_hard`` and, for a miner
    with params (the built-in ones take none), ``{name: <miner>, <its params>}``; build it with :func:`create_ref`.

    Validates that the name is installed (with a 'did you mean' hint otherwise) and the params.
    """

    def __init__(self, kind: str):
        self.kind = kind

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        checked = core_schema.no_info_after_validator_function(self._check, handler(source))
        return core_schema.no_info_before_validator_function(self._check_form, checked)

    def _check_form(self, value: Any) -> Any:
        """One message for a value of neither form (pydantic's own is one per member of ``str | dict``)."""
        if not isinstance(value, str | dict):
            raise ValueError(f"a {self.kind} is given by name or as {{name: ..., <params>}}, not {value!r}")
        return value

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        """Marked with the kind, so that `simclr config schema` can list the installed components and their params
        here (:func:`simclr.config.json_schema`)."""
        return {**handler(schema), COMPONENT_REF_SCHEMA_KEY: self.kind}

    def _check(self, value: str | dict[str, Any]) -> str | dict[str, Any]:
        from simclr.plugin_manager import plugin_system

        if CHECKING_DEFAULTS.get():  # a default, as its plugin registers: the registry is still being filled
            return value
        name, params = _split_ref(value)
        registry = plugin_system().registry
        if name not in registry.names(self.kind):
            raise ValueError(registry.unknown(self.kind, name))
        component = registry.get(self.kind, name)
        try:
            component.parse(params)
        except ValidationError as exc:
            # the params' own errors go along, so that the config's report places each at its key and line
            message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            context = {"message": message, "error": exc, "params_model": component.params}
            raise PydanticCustomError(COMPONENT_REF_ERROR, "{message}", context) from None
        return value
