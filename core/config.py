"""Loading an experiment: YAML with node positions, ``--set`` overrides, and validation of every section.

Every error is reported as ``SOURCE: dotted.path: message`` where SOURCE is ``FILE:LINE`` or the ``--set``
override that introduced the value.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from simclr.errors import COMPONENT_REF_ERROR, COMPONENT_REF_SCHEMA_KEY, ConfigError, ConfigIssue, SimCLRError
from simclr.schema import CallbackSection, ComponentSection, Experiment

PathKey = tuple[str | int, ...]
Positions = dict[PathKey, str]


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _dotted(path: PathKey) -> str:
    return ".".join(str(p) for p in path)


def _construct(
    loader: yaml.SafeLoader, node: yaml.Node, path: PathKey, positions: Positions, src: str, line: int | None = None
) -> Any:
    """Build the Python value of ``node``, recording the line of every path (a mapping value: its key's line)."""
    positions[path] = f"{src}:{(node.start_mark.line if line is None else line) + 1}"
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
        raise ConfigError(ConfigIssue(positions[path], _dotted(path), f"YAML tag {node.tag} is not allowed"))
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise ConfigError(
                    ConfigIssue(f"{src}:{key_node.start_mark.line + 1}", _dotted(path), "keys must be plain words")
                )
            key = str(key)
            if key in result:
                raise ConfigError(
                    ConfigIssue(f"{src}:{key_node.start_mark.line + 1}", _dotted(path + (key,)), "duplicate key")
                )
            result[key] = _construct(loader, value_node, path + (key,), positions, src, key_node.start_mark.line)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, path + (i,), positions, src) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(path: str | Path, what: str = "an experiment YAML file") -> tuple[dict[str, Any], Positions]:
    """Read an experiment file (or ``what`` else it is, for the messages) safely, keeping the line of every
    node."""
    path = Path(path)
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(ConfigIssue(src, "", "no such file")) from None
    except IsADirectoryError:
        hint = f"; to continue the run in it: simclr train --resume {path}" if (path / "config.yaml").is_file() else ""
        raise ConfigError(ConfigIssue(src, "", f"is a directory, expected {what}{hint}")) from None
    except UnicodeDecodeError:
        raise ConfigError(ConfigIssue(src, "", "not a text file (expected UTF-8 YAML)")) from None
    except OSError as exc:
        raise ConfigError(ConfigIssue(src, "", f"cannot read: {exc.strerror}")) from None
    return parse_yaml(text, src)


def parse_yaml(text: str, src: str) -> tuple[dict[str, Any], Positions]:
    positions: Positions = {(): f"{src}:1"}
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else _construct(loader, node, (), positions, src)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(ConfigIssue(f"{src}{line}", "", f"YAML syntax error: {problem}")) from None
    except yaml.YAMLError as exc:
        raise ConfigError(ConfigIssue(src, "", f"YAML error: {exc}")) from None
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError(ConfigIssue(f"{src}:1", "", "the file is empty; expected a mapping of sections"))
    if not isinstance(data, dict):
        raise ConfigError(ConfigIssue(f"{src}:1", "", f"expected a mapping of sections, got a {type(data).__name__}"))
    return data, positions


def apply_overrides(data: dict[str, Any], positions: Positions, overrides: list[str]) -> None:
    """Apply ``key.path=value`` overrides in place; values are parsed as YAML (``0.1``, ``true``, ``[1, 2]``)."""
    for override in overrides:
        src = f"--set {override}"
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(ConfigIssue(src, "", "expected KEY.PATH=VALUE, e.g. loss.temperature=0.1"))
        parts: list[str | int] = [p.strip() for p in key.strip().split(".")]
        if any(p == "" for p in parts):
            raise ConfigError(ConfigIssue(src, key, "empty part in the key path"))
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(ConfigIssue(src, key, f"the value is not valid YAML: {exc}")) from None
        target: Any = data
        walked: list[str | int] = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(target, list):
                if not (isinstance(part, str) and part.isdigit() and int(part) < len(target)):
                    raise ConfigError(
                        ConfigIssue(src, _dotted(tuple(walked)), f"'{part}' is not an index of this list")
                    )
                part = int(part)
            elif not isinstance(target, dict):
                raise ConfigError(
                    ConfigIssue(src, _dotted(tuple(walked)), "is not a mapping, so it has no keys to set")
                )
            walked.append(part)
            if last:
                target[part] = value
            else:
                if isinstance(target, dict) and part not in target:
                    target[part] = {}
                    positions[tuple(walked)] = src  # a section the override created is the override's
                target = target[part]
        prefix = tuple(walked)
        for existing in [p for p in positions if p[: len(prefix)] == prefix]:
            del positions[existing]
        positions[prefix] = src


def _locate(positions: Positions, path: PathKey) -> str:
    """The source of the deepest known node on ``path`` (a missing key points at its parent)."""
    for end in range(len(path), -1, -1):
        found = positions.get(tuple(path[:end]))
        if found:
            return found
    return ""


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the section that holds ``loc``'s last key, following the schema down from ``model``."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, int):  # an item of a list of sections
            continue
        if current is None or part not in current.model_fields:
            return []
        current = _section_type(current.model_fields[part].annotation)[0]
    return list(current.model_fields) if current is not None else []


def _unknown_key_message(key: Any, known: list[str]) -> str:
    message = "unknown key (not a field of this section)"
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.75)
    if close:
        return f"{message}; did you mean '{close[0]}'?"
    return f"{message}; its keys: {', '.join(known)}" if known else message


def validation_issues(
    exc: ValidationError,
    prefix: PathKey = (),
    positions: Positions | None = None,
    model: type[BaseModel] | None = None,
) -> list[ConfigIssue]:
    """ConfigIssues for a pydantic error below ``prefix``, each with the source line of its node; with the
    ``model`` that was validated, an unknown key gets a did-you-mean hint."""
    positions = positions or {}
    issues = []
    for error in exc.errors(include_url=False):
        path = prefix + tuple(error["loc"])
        message = error["msg"]
        if error["type"] == COMPONENT_REF_ERROR:  # a referenced component's params: their errors, each at its key
            context = error["ctx"]
            issues += validation_issues(context["error"], path, positions, context["params_model"])
            continue
        if error["type"] == "value_error":  # a validator's own message, without pydantic's "Value error, "
            message = str(error["ctx"]["error"])
        elif error["type"] == "extra_forbidden":
            known = _known_keys(model, tuple(error["loc"])) if model is not None else []
            message = _unknown_key_message(error["loc"][-1], known)
        elif error["type"] == "missing":
            message = "required, but missing"
        elif error["type"] == "model_type":
            message = f"expected a mapping, got {type(error['input']).__name__}"
        issues.append(ConfigIssue(_locate(positions, path), _dotted(path), message))
    return issues


def _section_type(annotation: Any) -> tuple[type | None, bool]:
    """(model class, is a list of them) for a field annotation (optional or not), or (None, False)."""
    if get_origin(annotation) in (Union, UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _section_type(members[0])
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return (item, True) if isinstance(item, type) and issubclass(item, BaseModel) else (None, False)
    return (annotation, False) if isinstance(annotation, type) and issubclass(annotation, BaseModel) else (None, False)


def _raw_sections(model: type[BaseModel], data: Any, path: PathKey = ()) -> Iterator[tuple[PathKey, str, dict]]:
    """Component sections in raw data, found by following the schema: (path, kind, raw mapping)."""
    if not isinstance(data, dict):
        return
    for field_name, info in model.model_fields.items():
        cls, is_list = _section_type(info.annotation)
        value = data.get(field_name)
        if cls is None or value is None:
            continue
        items = list(enumerate(value)) if is_list and isinstance(value, list) else [(None, value)]
        for index, item in items:
            item_path = path + (field_name,) + (() if index is None else (index,))
            if issubclass(cls, ComponentSection):
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    yield item_path, cls.kind, item
            else:
                yield from _raw_sections(cls, item, item_path)


def _component_sections(obj: Any, path: PathKey = ()) -> Iterator[tuple[PathKey, ComponentSection]]:
    if isinstance(obj, ComponentSection):
        yield path, obj
    elif isinstance(obj, BaseModel):
        for field_name in type(obj).model_fields:
            yield from _component_sections(getattr(obj, field_name), path + (field_name,))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _component_sections(item, path + (i,))


def _validate_section(kind: str, raw: dict, path: PathKey, positions: Positions) -> BaseModel | list[ConfigIssue]:
    from simclr.plugin_manager import plugin_system

    name_path = path + ("name",)
    try:
        component = plugin_system().registry.get(kind, raw["name"], path=_dotted(name_path))
    except SimCLRError as exc:
        where = _locate(positions, name_path)
        return [ConfigIssue(where, i.path, i.message) for i in getattr(exc, "issues", [])] or [
            ConfigIssue(where, _dotted(name_path), str(exc))
        ]
    params = {key: value for key, value in raw.items() if key != "name"}
    try:
        return component.parse(params)
    except ValidationError as exc:
        issues = validation_issues(exc, path, positions, component.params)
    issues = [component.blame_default(issue, _dotted(path), params) for issue in issues]
    name_source = positions.get(name_path, "")
    if name_source.startswith("--set"):  # a dotted override changed the name but kept the old component's params
        replace = f"--set '{_dotted(path)}={{name: {raw['name']}}}'"
        hint = f"; {name_source} kept the section's other keys: replace it whole, e.g. {replace}"
        issues = [
            ConfigIssue(issue.source, issue.path, issue.message + hint)
            if issue.message.startswith("unknown key") and not issue.source.startswith("--set")  # kept, not given
            else issue
            for issue in issues
        ]
    return issues


def _non_finite(data: Any, path: PathKey = ()) -> Iterator[PathKey]:
    """Paths of the infinite and NaN numbers in raw data (YAML's .inf and .nan) or in validated models (where a
    string such as "inf" or "1e999" became one): no setting means them."""
    if isinstance(data, float) and not math.isfinite(data):
        yield path
    elif isinstance(data, BaseModel):
        for field_name in type(data).model_fields:
            yield from _non_finite(getattr(data, field_name), path + (field_name,))
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _non_finite(value, path + (key,))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from _non_finite(value, path + (index,))


def validate(
    data: dict[str, Any], positions: Positions | None = None, stored: bool = False, skip_kinds: Collection[str] = ()
) -> Experiment:
    """Validate raw experiment data: each component section with its own params model, and the rest with the
    schema; every problem found is reported together. ``stored``: a run's stored config, spared the checks that
    only concern a new run (:func:`simclr.schema.is_stored`). ``skip_kinds``: component kinds left unresolved
    (an evaluation builds no loss, optimizer or callback, whose plugins need not be installed where it runs)."""
    positions = positions or {}
    non_finite = _non_finite_issues(_non_finite(data), positions)
    issues: list[ConfigIssue] = []
    resolved: dict[PathKey, BaseModel] = {}
    for path, kind, raw in _raw_sections(Experiment, data):
        if kind in skip_kinds:
            continue
        result = _validate_section(kind, raw, path, positions)
        if isinstance(result, list):
            issues += result
        else:
            resolved[path] = result
    try:
        experiment = Experiment.model_validate(data, context={"stored": stored})
    except ValidationError as exc:
        issues = validation_issues(exc, (), positions, Experiment) + issues
    if stored:  # what --set gives now is new, and gets every check
        issues += [issue for issue in _new_run_issues(data, positions) if issue not in issues]
    if issues or non_finite:
        # a non-finite number is reported once, as such, not also as out of its field's range
        flagged = {issue.path for issue in non_finite}
        raise ConfigError(non_finite + [issue for issue in issues if issue.path not in flagged])
    if experiment.train.callbacks is None:
        from simclr.plugin_manager import plugin_system

        names = plugin_system().registry.defaults(CallbackSection.kind)
        experiment.train.callbacks = [CallbackSection(name=name) for name in names]
    for path, section in _component_sections(experiment):
        if section.kind in skip_kinds:
            continue
        if path not in resolved:  # a section that came from a schema default, not from the file
            result = _validate_section(section.kind, {"name": section.name, **section.raw_params()}, path, positions)
            if isinstance(result, list):
                raise ConfigError(result)
            resolved[path] = result
        section._params = resolved[path]
    coerced = [*_non_finite(experiment)] + [p for path, params in resolved.items() for p in _non_finite(params, path)]
    if coerced:
        raise ConfigError(_non_finite_issues(coerced, positions))
    return experiment


def _new_run_issues(data: dict[str, Any], positions: Positions) -> list[ConfigIssue]:
    """The issues of the values given with --set, checked as in a new experiment."""
    try:
        Experiment.model_validate(data, context={"stored": False})
    except ValidationError as exc:
        issues = validation_issues(exc, (), positions, Experiment)
        return [issue for issue in issues if issue.source.startswith("--set")]
    return []


def _non_finite_issues(paths: Iterable[PathKey], positions: Positions) -> list[ConfigIssue]:
    message = "must be a finite number (inf, nan and numbers too large for a float are refused)"
    return [ConfigIssue(_locate(positions, path), _dotted(path), message) for path in paths]


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> Experiment:
    """Read, override and validate an experiment file."""
    data, positions = load_yaml(path)
    if "data" not in data and ("grid" in data or "runs" in data):
        raise ConfigError(
            [
                ConfigIssue(
                    str(path),
                    "",
                    "this is a sweep file (it has grid: or runs:), not an experiment; check it with "
                    f"`simclr sweep {path} --dry-run` and run it with `simclr sweep {path}`",
                )
            ]
        )
    apply_overrides(data, positions, overrides or [])
    return validate(data, positions)


def experiment_from_dict(
    data: dict[str, Any],
    overrides: list[str] | None = None,
    src: str = "",
    stored: bool = False,
    skip_kinds: Collection[str] = (),
) -> Experiment:
    """Validate an experiment held as a dict; ``stored``: a run's own config (its config.yaml or the ``config`` in
    its checkpoint), made by a version of simclr whose checks may have been looser; ``skip_kinds``: as
    :func:`validate`."""
    data = yaml.safe_load(yaml.safe_dump(data))
    positions: Positions = {(): src} if src else {}
    apply_overrides(data, positions, overrides or [])
    return validate(data, positions, stored, skip_kinds)


def component_providers(experiment: Experiment) -> dict[str, dict[str, str]]:
    """Where each component section of ``experiment`` comes from, by dotted path: ``{"model.backbone": {"kind",
    "name", "plugin", "distribution", "version"}}``; kept in checkpoints, so that a machine without a plugin can
    say which distribution to install."""
    from simclr.plugin_manager import plugin_system

    registry = plugin_system().registry
    providers = {}
    for path, section in _component_sections(experiment):
        provider = registry.get(section.kind, section.name).provider
        providers[_dotted(path)] = {
            "kind": section.kind,
            "name": section.name,
            "plugin": provider.plugin,
            "distribution": provider.distribution,
            "version": provider.version,
        }
    return providers


def with_install_hints(error: ConfigError, providers: dict[str, Any]) -> ConfigError:
    """``error`` with, for each unknown component that ``providers`` (:func:`component_providers` of the run)
    knows, the distribution the run had it from and how to install it."""
    issues = []
    for issue in error.issues:
        provider = providers.get(issue.path.removesuffix(".name")) if isinstance(providers, dict) else None
        trained_with = isinstance(provider, dict) and "distribution" in provider
        if trained_with and issue.message.startswith(f"unknown {provider.get('kind')} '{provider.get('name')}'"):
            distribution = provider["distribution"]
            hint = f"; the run was trained with it from {distribution} {provider.get('version', '')}".rstrip()
            issue = ConfigIssue(issue.source, issue.path, f"{issue.message}{hint} (pip install {distribution})")
        issues.append(issue)
    return ConfigError(issues)


def resolved_dict(experiment: Experiment) -> dict[str, Any]:
    """The experiment with every default filled in, as plain data."""
    return experiment.model_dump(mode="json")


def dump_yaml(experiment: Experiment) -> str:
    return yaml.safe_dump(resolved_dict(experiment), sort_keys=False)


def json_schema() -> dict[str, Any]:
    """A JSON Schema of the experiment file in which each component section lists the installed components
    (``name`` as a constant, plus that component's params), and so does each reference to a component inside
    params (a loss's ``miner``: an installed name, or a section of one)."""
    schema = Experiment.model_json_schema()
    defs = schema.setdefault("$defs", {})
    for section_type in ComponentSection.__subclasses__():
        title = section_type.__name__
        if title in defs:
            choices = _component_choices(section_type.kind, title, defs)
            defs[title] = {"oneOf": choices, "description": f"a {section_type.kind}: {{name: ..., <params>}}"}
    referenced: set[str] = set()
    schema = _expand_component_refs(schema, referenced)
    defs = schema["$defs"]
    while referenced - defs.keys():  # a referenced component's params may refer to yet another kind
        kind = sorted(referenced - defs.keys())[0].removesuffix("Ref")
        choices = _expand_component_refs(_component_choices(kind, f"{kind}Ref", defs), referenced)
        names = [choice["properties"]["name"]["const"] for choice in choices]
        defs[f"{kind}Ref"] = {"anyOf": [{"enum": names}, {"oneOf": choices}], "description": f"a {kind}"}
    return schema


def _component_choices(kind: str, prefix: str, defs: dict[str, Any]) -> list[dict[str, Any]]:
    """One object schema per installed component of ``kind``: its name as a constant and its params (their own
    definitions go into ``defs`` under ``prefix``)."""
    from simclr.plugin_manager import plugin_system

    registry = plugin_system().registry
    choices = []
    for name in registry.names(kind):
        component = registry.get(kind, name)
        params = component.params.model_json_schema(ref_template=f"#/$defs/{prefix}_{name}_{{model}}")
        for def_name, definition in params.pop("$defs", {}).items():
            defs[f"{prefix}_{name}_{def_name}"] = definition
        choices.append(
            {
                "type": "object",
                "title": f"{kind} {name}",
                "description": component.description,
                "properties": {"name": {"const": name}, **params.get("properties", {})},
                "required": ["name", *params.get("required", [])],
                "additionalProperties": False,
            }
        )
    return choices


def _expand_component_refs(node: Any, referenced: set[str]) -> Any:
    """``node`` with each schema marked as a component reference replaced by a ``$ref`` to ``<kind>Ref`` (whose
    names are collected in ``referenced``), keeping its default and description."""
    if isinstance(node, list):
        return [_expand_component_refs(item, referenced) for item in node]
    if not isinstance(node, dict):
        return node
    if COMPONENT_REF_SCHEMA_KEY in node:
        kind = node[COMPONENT_REF_SCHEMA_KEY]
        referenced.add(f"{kind}Ref")
        kept = {key: node[key] for key in ("default", "description", "title") if key in node}
        return {"$ref": f"#/$defs/{kind}Ref", **kept}
    return {key: _expand_component_refs(value, referenced) for key, value in node.items()}
