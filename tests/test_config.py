"""The experiment loader: positions, overrides, component validation, and a catalogue of bad files."""

from __future__ import annotations

import textwrap
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, model_validator

import simclr
from simclr import config
from simclr.errors import ConfigError

GOOD = textwrap.dedent(
    """\
    name: tiny
    data:
      dataset:
        name: synthetic
        image_size: 16
      batch_size: 32
    model:
      backbone:
        name: small_resnet
    loss:
      name: nt_xent
      temperature: 0.5
    optimizer:
      name: adam
      lr: 0.001
    train:
      epochs: 1
      device: cpu
    """
)


def write(tmp_path, text: str, name: str = "exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.load_experiment(path, list(overrides))
    return [str(issue) for issue in info.value.issues]


def test_good_config_resolves_every_default(tmp_path):
    experiment = config.load_experiment(write(tmp_path, GOOD))
    resolved = config.resolved_dict(experiment)
    assert resolved["loss"] == {"name": "nt_xent", "temperature": 0.5}
    assert resolved["optimizer"]["lr"] == 0.001
    assert "weight_decay" in resolved["optimizer"]
    assert resolved["schedule"]["warmup_epochs"] == 10
    assert [c["name"] for c in resolved["train"]["callbacks"]] == ["metrics_jsonl", "plots"]


def test_resolved_config_round_trips(tmp_path):
    experiment = config.load_experiment(write(tmp_path, GOOD))
    again = config.experiment_from_dict(config.resolved_dict(experiment))
    assert config.resolved_dict(again) == config.resolved_dict(experiment)


def test_overrides_apply_and_parse_yaml_values(tmp_path):
    path = write(tmp_path, GOOD)
    experiment = config.load_experiment(path, ["loss.temperature=0.1", "train.epochs=3", "loss={name: nt_xent}"])
    assert experiment.loss.params.temperature == 0.5  # the later override replaced the whole section
    experiment = config.load_experiment(path, ["loss.temperature=0.1", "data.augment.crop_scale=[0.2, 1]"])
    assert experiment.loss.params.temperature == 0.1
    assert experiment.data.augment.crop_scale == (0.2, 1.0)


# (file text, or (GOOD, overrides)), expected source, expected dotted path, expected words in the message
CATALOGUE = [
    ("unknown top-level key", GOOD + "extra: 1\n", "exp.yaml:19", "extra", "its keys: name, data, model, loss"),
    (
        "unknown key in data",
        GOOD.replace("batch_size: 32", "batch_sise: 32"),
        "exp.yaml:6",
        "data.batch_sise",
        "unknown key (not a field of this section); did you mean 'batch_size'?",
    ),
    (
        "unknown loss param",
        GOOD.replace("temperature: 0.5", "temprature: 0.5"),
        "exp.yaml:12",
        "loss.temprature",
        "did you mean 'temperature'?",
    ),
    (
        "infinite temperature",
        GOOD.replace("temperature: 0.5", "temperature: .inf"),
        "exp.yaml:12",
        "loss.temperature",
        "must be a finite number",
    ),
    (
        "NaN learning rate",
        GOOD.replace("lr: 0.001", "lr: .nan"),
        "exp.yaml:15",
        "optimizer.lr",
        "must be a finite number",
    ),
    (
        "temperature written as a string that pydantic reads as infinity",
        GOOD.replace("temperature: 0.5", 'temperature: "inf"'),
        "exp.yaml:12",
        "loss.temperature",
        "must be a finite number",
    ),
    (
        "learning rate too large for a float",
        GOOD.replace("lr: 0.001", 'lr: "1e999"'),
        "exp.yaml:15",
        "optimizer.lr",
        "must be a finite number",
    ),
    (
        "negative temperature",
        GOOD.replace("temperature: 0.5", "temperature: -1"),
        "exp.yaml:12",
        "loss.temperature",
        "greater than 0",
    ),
    (
        "zero temperature",
        GOOD.replace("temperature: 0.5", "temperature: 0"),
        "exp.yaml:12",
        "loss.temperature",
        "greater than 0",
    ),
    (
        "temperature as text",
        GOOD.replace("temperature: 0.5", "temperature: warm"),
        "exp.yaml:12",
        "loss.temperature",
        "number",
    ),
    (
        "unknown loss name",
        GOOD.replace("name: nt_xent", "name: nt_xnet"),
        "exp.yaml:11",
        "loss.name",
        "did you mean 'nt_xent'",
    ),
    (
        "unknown backbone",
        GOOD.replace("small_resnet", "resnet1"),
        "exp.yaml:9",
        "model.backbone.name",
        "installed:",
    ),
    (
        "unknown dataset",
        GOOD.replace("name: synthetic", "name: cifar11"),
        "exp.yaml:4",
        "data.dataset.name",
        "did you mean",
    ),
    (
        "unknown optimizer",
        GOOD.replace("name: adam", "name: adma"),
        "exp.yaml:14",
        "optimizer.name",
        "did you mean 'adam'",
    ),
    (
        "missing loss section",
        GOOD.replace("loss:\n  name: nt_xent\n  temperature: 0.5\n", ""),
        "exp.yaml:1",
        "loss",
        "required",
    ),
    (
        "missing model section",
        GOOD.replace("model:\n  backbone:\n    name: small_resnet\n", ""),
        "exp.yaml:1",
        "model",
        "required",
    ),
    (
        "component without name",
        GOOD.replace("  name: adam\n", ""),
        "exp.yaml:13",
        "optimizer.name",
        "required",
    ),
    (
        "batch size too small",
        GOOD.replace("batch_size: 32", "batch_size: 1"),
        "exp.yaml:6",
        "data.batch_size",
        "greater than or equal to 2",
    ),
    (
        "batch size as float",
        GOOD.replace("batch_size: 32", "batch_size: 3.5"),
        "exp.yaml:6",
        "data.batch_size",
        "integer",
    ),
    (
        "epochs zero",
        GOOD.replace("epochs: 1", "epochs: 0"),
        "exp.yaml:17",
        "train.epochs",
        "greater than or equal to 1",
    ),
    (
        "bad device",
        GOOD.replace("device: cpu", "device: gpu0"),
        "exp.yaml:18",
        "train.device",
        "not a device",
    ),
    ("bad precision", GOOD + "  precision: fp8\n", "exp.yaml:19", "train.precision", "fp32"),
    (
        "list where a mapping belongs",
        GOOD.replace("loss:\n  name: nt_xent\n  temperature: 0.5", "loss: [nt_xent]"),
        "exp.yaml:10",
        "loss",
        "mapping",
    ),
    (
        "scalar where a mapping belongs",
        GOOD.replace("train:\n  epochs: 1\n  device: cpu", "train: 5"),
        "exp.yaml:16",
        "train",
        "mapping",
    ),
    (
        "mapping where a number belongs",
        GOOD.replace("lr: 0.001", "lr: {value: 1}"),
        "exp.yaml:15",
        "optimizer.lr",
        "number",
    ),
    ("negative lr", GOOD.replace("lr: 0.001", "lr: -0.1"), "exp.yaml:15", "optimizer.lr", "greater than 0"),
    (
        "crop scale out of range",
        GOOD.replace("batch_size: 32", "batch_size: 32\n  augment:\n    crop_scale: [0.5, 2]"),
        "exp.yaml:8",
        "data.augment.crop_scale",
        "0 < low",
    ),
    ("run name with a path", GOOD.replace("name: tiny", "name: ../../elsewhere"), "exp.yaml:1", "name", "--out DIR"),
    ("run name with a folder", GOOD.replace("name: tiny", "name: my/photos"), "exp.yaml:1", "name", "no '/'"),
    ("run name that is the parent", GOOD.replace("name: tiny", "name: '..'"), "exp.yaml:1", "name", "'..'"),
    (
        "zero aspect ratio",
        GOOD.replace("batch_size: 32", "batch_size: 32\n  augment:\n    crop_ratio: [0, 1]"),
        "exp.yaml:8",
        "data.augment.crop_ratio",
        "0 < low <= high",
    ),
    (
        "zero blur sigma",
        GOOD.replace("batch_size: 32", "batch_size: 32\n  augment:\n    blur_sigma: [0, 0]"),
        "exp.yaml:8",
        "data.augment.blur_sigma",
        "0 < low <= high",
    ),
    (
        "blur sigma range reversed",
        GOOD.replace("batch_size: 32", "batch_size: 32\n  augment:\n    blur_sigma: [2.0, 0.1]"),
        "exp.yaml:8",
        "data.augment.blur_sigma",
        "0 < low <= high",
    ),
    (
        "probability above one",
        GOOD.replace("batch_size: 32", "batch_size: 32\n  augment:\n    flip_p: 1.5"),
        "exp.yaml:8",
        "data.augment.flip_p",
        "less than or equal to 1",
    ),
    (
        "bad backend",
        GOOD.replace("batch_size: 32", "batch_size: 32\n  augment:\n    backend: gpu"),
        "exp.yaml:8",
        "data.augment.backend",
        "batched",
    ),
    (
        "duplicate key",
        GOOD.replace("  temperature: 0.5", "  temperature: 0.5\n  temperature: 0.1"),
        "exp.yaml:13",
        "loss.temperature",
        "duplicate key",
    ),
    (
        "YAML syntax error",
        GOOD.replace("  temperature: 0.5", "  temperature: [0.5"),
        "exp.yaml:",
        "",
        "YAML syntax error",
    ),
    ("tab indentation", GOOD.replace("  temperature: 0.5", "\ttemperature: 0.5"), "exp.yaml:", "", "YAML"),
    ("empty file", "", "exp.yaml:1", "", "empty"),
    ("only a comment", "# nothing here\n", "exp.yaml:1", "", "empty"),
    ("top level is a list", "- data\n- model\n", "exp.yaml:1", "", "mapping of sections"),
    ("top level is a scalar", "hello\n", "exp.yaml:1", "", "mapping of sections"),
    (
        "unknown callback",
        GOOD + "  callbacks: [{name: wandb}]\n",
        "exp.yaml:19",
        "train.callbacks.0.name",
        "unknown callback",
    ),
    ("unknown eval key", GOOD + "eval:\n  knn: 3\n", "exp.yaml:20", "eval.knn", "unknown"),
    (
        "few-label K zero",
        GOOD + "eval:\n  labels_per_class: [0, 5]\n",
        "exp.yaml:20",
        "eval.labels_per_class",
        ">= 1",
    ),
    (
        "bad override value",
        (GOOD, ["loss.temperature=-2"]),
        "--set loss.temperature=-2",
        "loss.temperature",
        "greater than 0",
    ),
    ("override unknown key", (GOOD, ["loss.tau=0.1"]), "--set loss.tau=0.1", "loss.tau", "unknown"),
    ("override unknown section", (GOOD, ["foo.bar=1"]), "--set foo.bar=1", "foo", "its keys: name, data, model"),
    (
        "override with an infinite number in a pair",
        (GOOD, ['data.augment.crop_ratio=[0.75, "inf"]']),
        '--set data.augment.crop_ratio=[0.75, "inf"]',
        "data.augment.crop_ratio.1",
        "must be a finite number",
    ),
    (
        "override with an infinite warm-up",
        (GOOD, ["schedule.warmup_epochs=inf"]),
        "--set schedule.warmup_epochs=inf",
        "schedule.warmup_epochs",
        "must be a finite number",
    ),
    (
        "override switches a component by its name only",
        (GOOD, ["loss.name=margin_triplet"]),
        "exp.yaml:12",
        "loss.temperature",
        "--set loss.name=margin_triplet kept the section's other keys: replace it whole, e.g. --set 'loss={name: m",
    ),
    (
        "a miner's params, placed at their own key and line",
        GOOD.replace(
            "name: nt_xent\n  temperature: 0.5", "name: margin_triplet\n  miner:\n    name: hardest\n    bogus: 1"
        ),
        "exp.yaml:14",
        "loss.miner.bogus",
        "unknown key (not a field of this section)",
    ),
    (
        "a miner of neither form, in one message (not one per member of str | dict)",
        (GOOD, ["loss={name: margin_triplet, miner: 3}"]),
        "--set loss={name: margin_triplet, miner: 3}",
        "loss.miner",
        "a miner is given by name or as {name: ..., <params>}, not 3",
    ),
    ("override without =", (GOOD, ["loss.temperature"]), "--set loss.temperature", "", "KEY.PATH=VALUE"),
    (
        "override into a scalar",
        (GOOD, ["train.epochs.x=1"]),
        "--set train.epochs.x=1",
        "train.epochs",
        "not a mapping",
    ),
    (
        "override bad yaml",
        (GOOD, ["loss.temperature=[1"]),
        "--set loss.temperature=[1",
        "loss.temperature",
        "not valid YAML",
    ),
]


@pytest.mark.parametrize(("case", "text", "source", "path", "words"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_config_catalogue(tmp_path, case, text, source, path, words):
    overrides: list[str] = []
    if isinstance(text, tuple):
        text, overrides = text
    messages = errors_of(write(tmp_path, text), overrides)
    expected_source = source if source.startswith("--set") else str(tmp_path / source)
    matching = [m for m in messages if m.startswith(expected_source) and f": {path}:" in f": {m.split(': ', 1)[1]}"]
    if not path:
        matching = [m for m in messages if m.startswith(expected_source)]
    assert matching, f"{case}: no message at {expected_source} / {path!r} in {messages}"
    assert any(words in m for m in matching), f"{case}: {words!r} not in {matching}"


class RangedMinerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    low: float = 0.0
    high: float = 1.0
    sizes: list[int] = [1]

    @model_validator(mode="after")
    def _ordered(self) -> RangedMinerParams:
        if self.low > self.high:
            raise ValueError("low must be at most high")
        return self


def test_a_referenced_components_errors_are_placed_at_their_own_key_and_line(tmp_path, monkeypatch):
    """A plugin miner with params: a list item's error at that item's line, the params model's own check at the
    miner section, each with its dotted path."""
    from simclr.plugin_manager import plugin_system
    from simclr.registry import Component, Provider

    provider = Provider("ranged", "simclr-plugin-ranged", "1.0")
    miner = Component("miner", "ranged", lambda params: None, RangedMinerParams, "a test miner", provider)
    monkeypatch.setitem(plugin_system().registry.components["miner"], "ranged", miner)
    miner = "name: margin_triplet\n  miner:\n    name: ranged\n    low: {low}\n    sizes:\n      - 1\n      - {item}"
    where = tmp_path / "exp.yaml"
    section = GOOD.replace("name: nt_xent\n  temperature: 0.5", miner.format(low=0, item="x"))
    assert errors_of(write(tmp_path, section)) == [
        f"{where}:17: loss.miner.sizes.1: Input should be a valid integer, unable to parse string as an integer"
    ]
    section = GOOD.replace("name: nt_xent\n  temperature: 0.5", miner.format(low=2, item=3))
    assert errors_of(write(tmp_path, section)) == [f"{where}:12: loss.miner: low must be at most high"]


class DefaultMinerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    miner: Annotated[str | dict[str, Any], simclr.ComponentRef("miner")] = "missing_miner"


def test_a_plugins_default_that_fails_is_blamed_on_the_plugin_not_the_user(tmp_path, monkeypatch):
    """A plugin loss whose default names a miner that is not installed: the error says it is that plugin's
    default, and how to get past it; a value the user gave is the user's."""
    from simclr.plugin_manager import plugin_system
    from simclr.registry import Component, Provider

    provider = Provider("acme", "simclr-plugin-acme", "1.0")
    loss = Component("loss", "defaulted", lambda params: None, DefaultMinerParams, "a test loss", provider)
    monkeypatch.setitem(plugin_system().registry.components["loss"], "defaulted", loss)
    path = write(tmp_path, GOOD)
    [error] = errors_of(path, ["loss={name: defaulted}"])
    assert error.startswith("--set loss={name: defaulted}: loss.miner: unknown miner 'missing_miner'")
    assert error.endswith(
        "(the default of loss 'defaulted' from plugin 'acme' (distribution simclr-plugin-acme 1.0); give loss.miner "
        "yourself)"
    )
    [error] = errors_of(path, ["loss={name: defaulted, miner: nope}"])
    assert "unknown miner 'nope'" in error and "the default of" not in error


def test_a_validators_message_comes_without_pydantics_prefix(tmp_path):
    [message] = errors_of(write(tmp_path, GOOD.replace("device: cpu", "device: gpu")))
    expected = "train.device: 'gpu' is not a device; use auto, cpu, cuda, cuda:N or mps"
    assert message == f"{tmp_path / 'exp.yaml'}:18: {expected}"


def test_a_misspelled_key_given_with_set_gets_no_hint_about_kept_keys(tmp_path):
    messages = errors_of(write(tmp_path, GOOD), ["loss.name=margin_triplet", "loss.marginn=0.5"])
    kept = [m for m in messages if ": loss.temperature:" in m]
    given = [m for m in messages if ": loss.marginn:" in m]
    assert len(kept) == 1 and "kept the section's other keys" in kept[0]
    assert len(given) == 1 and given[0].startswith("--set loss.marginn=0.5") and "did you mean 'margin'" in given[0]
    assert "kept the section's other keys" not in given[0]


def test_several_errors_are_reported_together(tmp_path):
    text = GOOD.replace("temperature: 0.5", "temperature: -1").replace("epochs: 1", "epochs: 0")
    messages = errors_of(write(tmp_path, text))
    assert any("loss.temperature" in m for m in messages) and any("train.epochs" in m for m in messages)
    # every callback's errors too, beside the other sections' (callbacks is an optional list of sections)
    callbacks = "  callbacks: [{name: metrics_jsonl, bogus: 1}, {name: nosuch}]\n"
    messages = errors_of(write(tmp_path, text.replace("  epochs: 0\n", "  epochs: 0\n" + callbacks)))
    assert any("train.callbacks.0.bogus: unknown key" in m for m in messages), messages
    assert any("train.callbacks.1.name: unknown callback 'nosuch'" in m for m in messages), messages
    assert any("loss.temperature" in m for m in messages) and any("train.epochs" in m for m in messages)


def test_missing_and_binary_files(tmp_path):
    assert "no such file" in errors_of(tmp_path / "nope.yaml")[0]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x00\xff\xfe\x80garbage")
    assert errors_of(binary)


def test_yaml_is_loaded_safely(tmp_path):
    text = GOOD.replace("name: tiny", "name: !!python/object/apply:os.system ['echo pwned']")
    messages = errors_of(write(tmp_path, text))
    assert any("YAML tag" in m and m.startswith(str(tmp_path)) for m in messages)


def test_json_schema_lists_installed_components():
    schema = config.json_schema()
    loss_choices = schema["$defs"]["LossSection"]["oneOf"]
    names = {choice["properties"]["name"]["const"] for choice in loss_choices}
    assert {"nt_xent", "nt_logistic", "margin_triplet"} <= names
    nt_xent = next(c for c in loss_choices if c["properties"]["name"]["const"] == "nt_xent")
    assert nt_xent["properties"]["temperature"]["exclusiveMinimum"] == 0
    assert nt_xent["additionalProperties"] is False


def test_json_schema_checks_a_referenced_miner_and_its_params_as_an_editor_would():
    import jsonschema
    import yaml

    schema = config.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    experiment = yaml.safe_load(GOOD)
    for miner in ("semi_hard", {"name": "hardest"}):
        experiment["loss"] = {"name": "margin_triplet", "margin": 0.5, "miner": miner}
        assert not list(validator.iter_errors(experiment)), miner
    for miner in ("semi_hardd", {"name": "hardest", "bogus": 1}):
        experiment["loss"] = {"name": "margin_triplet", "miner": miner}
        assert list(validator.iter_errors(experiment)), miner
    assert set(schema["$defs"]["minerRef"]["anyOf"][0]["enum"]) >= {"all", "hardest", "semi_hard", "violating"}


def test_callbacks_default_to_the_default_on_ones_and_a_list_replaces_them(tmp_path):
    path = write(tmp_path, GOOD)
    defaults = config.load_experiment(path).train.callbacks
    assert [c.name for c in defaults] == ["metrics_jsonl", "plots"]  # registered with default=True
    chosen = config.load_experiment(path, ["train.callbacks=[{name: tensorboard}]"]).train.callbacks
    assert [c.name for c in chosen] == ["tensorboard"]
    assert config.load_experiment(path, ["train.callbacks=[]"]).train.callbacks == []


def test_a_sweep_file_given_as_an_experiment_points_at_simclr_sweep(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("base: exp.yaml\ngrid:\n  loss.temperature: [0.1, 0.5]\n")
    with pytest.raises(ConfigError, match=f"this is a sweep file .* `simclr sweep {path} --dry-run`"):
        config.load_experiment(path)


def test_a_seed_is_any_integer_the_runs_seed_arithmetic_keeps_in_64_bits(tmp_path):
    """Negative seeds (accepted before the bound) still are; a seed of 2**32 or more, which overflowed the data
    stream's generator seed at run time, is refused when validated."""
    path = write(tmp_path, GOOD)
    assert config.load_experiment(path, ["train.seed=-4294967295"]).train.seed == -(2**32 - 1)
    assert config.load_experiment(path, ["train.seed=4294967295"]).train.seed == 2**32 - 1
    assert errors_of(path, ["train.seed=4294967296"]) == [
        "--set train.seed=4294967296: train.seed: Input should be less than 4294967296"
    ]


@pytest.mark.parametrize(
    "value, read_as",
    [
        ("2024", "YAML read this path as a number: 2024, not text; quote the folder name as written: 'NAME'"),
        ("010", "YAML read this path as a number: 8, not text"),
        ("no", "YAML read this path as true/false (unquoted yes, no, on and off are): False, not text"),
        ("2024-01-05", "YAML read this path as a date: datetime.date(2024, 1, 5), not text"),
        ("data/x: y", "YAML read this path as a mapping (': ' inside it): {'data/x': 'y'}, not text"),
    ],
)
def test_a_folder_name_yaml_reads_as_something_else_says_to_quote_it(tmp_path, value, read_as):
    section = GOOD.replace("name: synthetic\n    image_size: 16", "name: image_folder\n    image_size: 16")
    path = write(tmp_path, section)
    [error] = errors_of(path, [f"data.dataset.train={value}"])
    assert error.startswith(f"--set data.dataset.train={value}: data.dataset.train: {read_as}")
    quoted = config.load_experiment(path, [f'data.dataset.train="{value}"'])  # quoted, it is the folder's name
    assert str(quoted.data.dataset.params.train) == value
