"""Component registry: every loss, miner, backbone, optimizer, dataset and callback is a named component with a
factory and a pydantic params model, contributed by a plugin."""

from __future__ import annotations

import difflib
import inspect
import re
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, ValidationError

from simclr.errors import ConfigError, ConfigIssue, PluginError, SimCLRError


class NoParams(BaseModel):
    """Params model of a component that takes none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class KindSpec:
    """What a component kind is: its registration hook, what its factory receives and must return."""

    name: str
    hook: str
    factory_signature: str
    returns: str
    check: Callable[[Any], bool]
    #: what is wrong with a returned object the check refuses, beyond its type (e.g. a backbone's feature_dim)
    detail: Callable[[Any], str] = lambda obj: ""


def _is_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def _is_backbone(obj: Any) -> bool:
    return _is_module(obj) and isinstance(getattr(obj, "feature_dim", None), int)


def _backbone_detail(obj: Any) -> str:
    return f" (its feature_dim is {obj.feature_dim!r})" if hasattr(obj, "feature_dim") else " (it has no feature_dim)"


def _groups_without_lr(obj: Any) -> list[int]:
    """Indices of an optimizer's param groups without a numeric ``lr`` (the schedule sets it every step)."""
    import torch

    return [
        index
        for index, group in enumerate(obj.param_groups)
        if isinstance(group.get("lr"), bool) or not isinstance(group.get("lr"), (int, float, torch.Tensor))
    ]


def _is_optimizer(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.optim.Optimizer) and not _groups_without_lr(obj)


def _optimizer_detail(obj: Any) -> str:
    import torch

    if not isinstance(obj, torch.optim.Optimizer):
        return ""
    return f" whose param group {_groups_without_lr(obj)[0]} has no numeric 'lr' (the schedule sets it every step)"


def _is_dataset(obj: Any) -> bool:
    from simclr.data import ImageDataset

    size = getattr(obj, "image_size", None)
    return isinstance(obj, ImageDataset) and isinstance(size, int) and not isinstance(size, bool) and size > 0


def _dataset_detail(obj: Any) -> str:
    from simclr.data import ImageDataset

    if not isinstance(obj, ImageDataset):
        return ""
    if not hasattr(obj, "image_size"):
        return " without an image_size"
    return f" with image_size {obj.image_size!r}"


KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec("loss", "simclr_register_losses", "factory(params)", "a torch.nn.Module", _is_module),
        KindSpec("miner", "simclr_register_miners", "factory(params)", "a callable", callable),
        KindSpec(
            "backbone",
            "simclr_register_backbones",
            "factory(params, image_size)",
            "a torch.nn.Module with an int `feature_dim`",
            _is_backbone,
            _backbone_detail,
        ),
        KindSpec(
            "optimizer",
            "simclr_register_optimizers",
            "factory(params, model)",
            "a torch.optim.Optimizer with an `lr` in every param group",
            _is_optimizer,
            _optimizer_detail,
        ),
        KindSpec(
            "dataset",
            "simclr_register_datasets",
            "factory(params)",
            "a simclr.data.ImageDataset with a positive int `image_size`",
            _is_dataset,
            _dataset_detail,
        ),
        KindSpec("callback", "simclr_register_callbacks", "factory(params)", "an object", lambda obj: True),
    )
}


@dataclass(frozen=True)
class Provider:
    """The plugin (entry-point name) and the distribution that installed it."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' (distribution {self.distribution} {self.version})"


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    params: type[BaseModel]
    description: str
    provider: Provider
    default: bool = False

    @property
    def label(self) -> str:
        """How messages name it: ``loss 'my_loss' from plugin 'example' (distribution simclr-plugin-example 1.0)``."""
        return f"{self.kind} '{self.name}' from {self.provider}"

    def parse(self, params: dict[str, Any]) -> BaseModel:
        """``params`` validated by this component's params model (raises pydantic's ValidationError). Defaults
        are validated like given values (pydantic takes them as they are), so a default ``"~/data"`` of a
        :data:`simclr.DataPath` field is a Path with ``~`` expanded, as a given one is; ``model_fields_set``
        still holds only the fields ``params`` gave."""
        given = {name for name, keys in input_keys(self.params).items() if name in params or set(keys) & set(params)}
        defaults = {key: value for key, (name, value) in field_defaults(self.params).items() if name not in given}
        model = self.params.model_validate({**defaults, **params})
        object.__setattr__(model, "__pydantic_fields_set__", given)
        return model

    def validate(self, params: dict[str, Any], path: str = "") -> BaseModel:
        """Validate ``params`` with this component's params model; errors carry ``path.field`` locations."""
        try:
            return self.parse(params)
        except ValidationError as exc:
            from simclr.config import validation_issues

            prefix = tuple(path.split(".")) if path else ()
            issues = validation_issues(exc, prefix=prefix, model=self.params)
            raise ConfigError([self.blame_default(issue, path, params) for issue in issues]) from None

    def blame_default(self, issue: ConfigIssue, path: str, params: dict[str, Any]) -> ConfigIssue:
        """``issue`` (of params ``params`` validated at dotted ``path``) at a field the params left out is the
        plugin's default's, not the user's: said so, with the fix for now."""
        field = issue.path.removeprefix(f"{path}.").split(".")[0] if path else issue.path.split(".")[0]
        if field in params or field not in self.params.model_fields:
            return issue
        message = f"{issue.message} (the default of {self.label}; give {path + '.' if path else ''}{field} yourself)"
        return replace(issue, message=message)

    def build(self, params: BaseModel, *context: Any) -> Any:
        """Call the factory with validated params and the kind's context arguments; check what it returns."""
        try:
            obj = self.factory(params, *context)
        except SimCLRError:
            raise
        except Exception as exc:
            raise PluginError(f"{self.label} failed to build: {type(exc).__name__}: {exc}") from exc
        spec = KINDS[self.kind]
        if not spec.check(obj):
            raise PluginError(
                f"{self.label} returned {type(obj).__name__}{spec.detail(obj)}, "
                f"but {'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind} factory, {spec.factory_signature}, "
                f"must return {spec.returns}."
            )
        return obj

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "plugin": self.provider.plugin,
            "distribution": self.provider.distribution,
            "version": self.provider.version,
            "default": self.default,
            "params": self.params.model_json_schema(),
        }


def suggest(name: str, choices: list[str]) -> str:
    """A 'did you mean' hint plus the list of what is available."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}installed: {', '.join(sorted(choices)) or '(none)'}"


class NameClash(PluginError):
    """A plugin registers a kind and name that an earlier plugin already registered."""

    def __init__(self, new: Component, registered: Component) -> None:
        self.new = new
        self.registered = registered
        super().__init__(
            f"{new.kind} '{new.name}' is registered by both {registered.provider} and {new.provider}; "
            "the first keeps it, the second is not loaded"
        )


@dataclass
class Registry:
    """All installed components, by kind and name; plus the plugins that failed to load.

    A plugin's components are added all together or not at all (:meth:`add_plugin`): a name that an earlier
    plugin registered keeps its first provider and the later plugin is rejected whole.
    """

    components: dict[str, dict[str, Component]] = field(default_factory=lambda: {k: {} for k in KINDS})
    #: (kind, name) of a component whose plugin was rejected -> why, for the "unknown" error
    rejected: dict[tuple[str, str], str] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    #: plugins installed but disabled by SIMCLR_DISABLE_PLUGINS, e.g. "plugin 'x' (distribution y 1.0)"
    disabled: list[str] = field(default_factory=list)

    def add_plugin(self, components: list[Component]) -> None:
        """Add one plugin's components, or none of them if one's name is taken (:class:`NameClash`)."""
        for component in components:
            registered = self.components[component.kind].get(component.name)
            if registered is not None:
                raise NameClash(component, registered)
        for component in components:
            self.components[component.kind][component.name] = component

    def reject(self, components: list[Component], reason: str) -> None:
        """Record why ``components`` (of a plugin that failed to register) are not available."""
        for component in components:
            self.rejected.setdefault((component.kind, component.name), reason)

    def names(self, kind: str) -> list[str]:
        _check_kind(kind)
        return sorted(self.components[kind])

    def defaults(self, kind: str) -> list[str]:
        """Names of the components of ``kind`` registered as default-on."""
        return [name for name in self.names(kind) if self.components[kind][name].default]

    def get(self, kind: str, name: str, path: str = "") -> Component:
        _check_kind(kind)
        try:
            return self.components[kind][name]
        except KeyError:
            raise ConfigError(ConfigIssue("", path or kind, self.unknown(kind, name))) from None

    def unknown(self, kind: str, name: str) -> str:
        """The message for a ``kind`` named ``name`` that is not registered: why, if its plugin was rejected,
        and what is installed."""
        reason = self.rejected.get((kind, name))
        why = f"it was not registered because {reason}; " if reason else ""
        message = f"unknown {kind} '{name}'; {why}{suggest(name, self.names(kind))}"
        if reason:
            return message
        missing = [f"plugin '{f['plugin']}' (distribution {f['distribution']}) failed to load" for f in self.failures]
        missing += [f"{plugin} is disabled by SIMCLR_DISABLE_PLUGINS" for plugin in self.disabled]
        if len(missing) > NAMED_UNLOADED:
            missing = [*missing[:NAMED_UNLOADED], f"{len(missing) - NAMED_UNLOADED} more"]
        if missing:
            message += f"; it may come from a plugin that is not loaded: {'; '.join(missing)} (`simclr plugins list`)"
        return message


#: how many plugins that are not loaded an "unknown component" message names (`simclr plugins list` has them all)
NAMED_UNLOADED = 3


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown component kind '{kind}'; {suggest(kind, list(KINDS))}")


class Registrar:
    """What a registration hook receives: adds components of one kind on behalf of one plugin."""

    def __init__(self, kind: str, provider: Provider, added: list[Component]):
        self.kind = kind
        self.provider = provider
        self._added = added

    def add(
        self,
        name: str,
        factory: Callable[..., Any],
        params: type[BaseModel] = NoParams,
        description: str = "",
        default: bool = False,
    ) -> None:
        """Register component ``name``: ``factory(validated_params, *context)`` builds it. ``default``: a
        callback that runs when a config does not list its callbacks. A mistake here rejects the plugin, with a
        message that says where it was made."""
        where = _caller()
        what = f"{self.kind} '{name}'"
        if not (isinstance(name, str) and COMPONENT_NAME.fullmatch(name)):
            raise PluginError(
                f"{self.kind} name {name!r} (at {where}) must be letters, digits, '_', '-' or '.', starting with a "
                "letter or digit: it is written in experiment files and --set values"
            )
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise PluginError(f"params of {what} (at {where}) must be a pydantic BaseModel subclass")
        if params.model_config.get("extra") != "forbid":
            raise PluginError(f"params model of {what} ({_defined_at(params)}) must set model_config extra='forbid'")
        if "name" in params.model_fields:
            raise PluginError(
                f"params model of {what} ({_defined_at(params)}) has a field called 'name', which is the "
                "component's own key in a config section ({name: ..., <params>}); rename the field"
            )
        if default and self.kind != "callback":
            raise PluginError(f"{what} (at {where}) is registered with default=True, which only a callback takes")
        if any(c.kind == self.kind and c.name == name for c in self._added):
            raise PluginError(f"{what} is registered twice (the second time at {where})")
        problems = invalid_defaults(params)
        if problems:
            raise PluginError(
                f"params model of {what} ({_defined_at(params)}) has invalid defaults: {'; '.join(problems)}; "
                "a default must pass the field's own checks"
            )
        self._added.append(Component(self.kind, name, factory, params, description.strip(), self.provider, default))


#: what a component name may be: it is written in YAML files and in --set values such as `loss={name: x}`
COMPONENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


#: set while a params model's defaults are checked as its plugin registers: a :class:`simclr.ComponentRef` field
#: then checks no name, as the registry it looks in is still being filled (its names are checked when used)
CHECKING_DEFAULTS: ContextVar[bool] = ContextVar("simclr_checking_defaults", default=False)


def input_keys(params: type[BaseModel]) -> dict[str, list[str]]:
    """Each field's name -> the keys an input may give it by: its aliases, else its name (a field reached by an
    ``AliasPath`` has none)."""
    keys = {}
    for name, info in params.model_fields.items():
        aliases = info.validation_alias if info.validation_alias is not None else info.alias
        if isinstance(aliases, AliasChoices):
            keys[name] = [choice for choice in aliases.choices if isinstance(choice, str)]
        elif aliases is None or isinstance(aliases, str):
            keys[name] = [aliases or name]
        else:
            keys[name] = []
    return keys


def field_defaults(params: type[BaseModel]) -> dict[str, tuple[str, Any]]:
    """The default of each field of ``params`` that has one it can give without the other fields, by the key an
    input gives it by: ``{key: (field name, default)}``."""
    defaults = {}
    for name, keys in input_keys(params).items():
        info = params.model_fields[name]
        if info.is_required() or not keys:
            continue
        try:
            defaults[keys[0]] = (name, info.get_default(call_default_factory=True))
        except ValueError:  # a default_factory that takes the validated data: left to pydantic
            continue
    return defaults


def invalid_defaults(params: type[BaseModel]) -> list[str]:
    """``field (default): message`` for each default of ``params`` that its field rejects, validated as
    :meth:`Component.parse` will (the model's own validators included), and a validator that crashes on them.
    Not a check of the fields together: defaults may be meant to fail one ("give train or eval_train"), and with
    required fields absent, a validator may fail for their absence alone (``info.data["low"]``)."""
    from simclr.config import validation_issues

    defaults = {key: value for key, (_, value) in field_defaults(params).items()}
    whole = not any(info.is_required() for info in params.model_fields.values())
    token = CHECKING_DEFAULTS.set(True)
    try:
        params.model_validate(defaults)
    except ValidationError as exc:
        return [
            f"{issue.path} ({defaults[issue.path.split('.')[0]]!r}): {issue.message}"
            for issue in validation_issues(exc)
            if issue.path.split(".")[0] in defaults
        ]
    except Exception as exc:
        if isinstance(exc, LookupError) and not whole:
            return []
        return [f"its validators fail on the defaults: {type(exc).__name__}: {exc}"]
    finally:
        CHECKING_DEFAULTS.reset(token)
    return []


def _caller() -> str:
    """``file:line`` of the code that called the function calling this one (a plugin's ``registry.add``)."""
    frame = traceback.extract_stack(limit=3)[0]
    return f"{frame.filename}:{frame.lineno}"


def source_line(obj: Any) -> str | None:
    """``file:line`` where a class or function is defined, or None where its source cannot be found."""
    try:
        return f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"
    except (OSError, TypeError):
        return None


def _defined_at(cls: type) -> str:
    where = source_line(cls)
    return f"class {cls.__qualname__} at {where}" if where else f"class {cls.__module__}.{cls.__qualname__}"
