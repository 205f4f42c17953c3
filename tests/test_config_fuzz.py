"""Property-based fuzzing of the config loader: any mutation of a shipped experiment file either validates or
raises simclr.ConfigError (a message naming the file and field), never another exception."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from conftest import CONFIGS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simclr
from simclr import config
from simclr.errors import ConfigError

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _experiment_files() -> list[Path]:
    """Every shipped experiment file (sweep files, which have `runs:` or `grid:`, are another format)."""
    files = []
    for path in sorted(CONFIGS.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if not ({"runs", "grid"} & set(data)):
            files.append(path)
    return files


FILES = _experiment_files()
TEXTS = {path: path.read_text() for path in FILES}
COMPONENT_NAMES = sorted({name for kind in simclr.KINDS for name in simclr.names(kind)})

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-5, max_value=50), max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=6), st.integers(), max_size=3),
)
YAML_NOISE = st.text(alphabet=":-[]{}#&*!|>'\"%@` \n\t0a.,", min_size=1, max_size=3)
KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.0123456789", min_size=1, max_size=12)


def _containers(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every mapping and list in ``node`` (the root included)."""
    found = [path] if isinstance(node, dict | list) else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        found += _containers(child, (*path, key))
    return found


def _at(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


def _mutate(data: dict, draw) -> None:
    """Apply one random mutation to ``data`` in place."""
    target = _at(data, draw(st.sampled_from(_containers(data))))
    keys = list(target) if isinstance(target, dict) else list(range(len(target)))
    operation = draw(st.sampled_from(["delete", "retype", "insert", "rename", "component"]))
    if operation == "insert" or not keys:
        if isinstance(target, dict):
            target[draw(KEYS)] = draw(VALUES)
        else:
            target.insert(draw(st.integers(0, len(target))), draw(VALUES))
        return
    key = draw(st.sampled_from(keys))
    if operation == "delete":
        del target[key]
    elif operation == "retype":
        target[key] = draw(VALUES)
    elif operation == "rename" and isinstance(target, dict):
        target[draw(KEYS)] = target.pop(key)
    elif isinstance(target, dict) and "name" in target:
        target["name"] = draw(st.one_of(st.sampled_from(COMPONENT_NAMES), st.text(max_size=8)))
    else:
        target[key] = draw(VALUES)


def _validates_or_config_error(text: str, overrides: list[str] = ()) -> None:
    try:
        data, positions = config.parse_yaml(text, "fuzzed.yaml")
        config.apply_overrides(data, positions, list(overrides))
        config.validate(data, positions)
    except ConfigError as exc:
        assert str(exc).strip(), "a ConfigError must carry a message"


def test_shipped_files_are_found():
    assert len(FILES) >= 10
    assert any(p.parent.name == "seed" for p in FILES)
    assert not any(p.name.endswith("sweep.yaml") for p in FILES)


@SETTINGS
@given(path=st.sampled_from(FILES), mutations=st.integers(1, 3), data=st.data())
def test_structural_mutations(path, mutations, data):
    raw = yaml.safe_load(TEXTS[path])
    mutated = copy.deepcopy(raw)
    for _ in range(mutations):
        _mutate(mutated, data.draw)
    _validates_or_config_error(yaml.safe_dump(mutated, allow_unicode=True))


@SETTINGS
@given(path=st.sampled_from(FILES), data=st.data())
def test_garbled_text(path, data):
    text = TEXTS[path]
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text = text[:at] + data.draw(YAML_NOISE) + text[at:]
        else:
            text = text[:at] + text[at + data.draw(st.integers(1, 5)) :]
    _validates_or_config_error(text)


@settings(max_examples=80, deadline=None)
@given(path=st.sampled_from(FILES), key=KEYS, value=st.text(max_size=10))
def test_random_overrides(path, key, value):
    _validates_or_config_error(TEXTS[path], [f"{key}={value}"])


def test_unmutated_files_validate():
    """The baseline of the properties: every shipped file is valid as it is."""
    for path in FILES:
        config.load_experiment(path)
