"""Plugin discovery: isolation of broken plugins, duplicates, disabling, type checks, lifecycle isolation."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import pickle
import re
from pathlib import Path

import pytest
from plugin_fixtures import (
    BAD_REGISTRATIONS,
    CLASHING_MINERS,
    DUPLICATE_NT_XENT,
    GOOD_LOSS,
    HOME_DEFAULT,
    LAX_PARAMS,
    RAISES_AT_IMPORT,
    RAISES_IN_HOOK,
    RAISES_IN_LIFECYCLE,
    SHARED_LOSS,
    TWICE,
    VALIDATED_DEFAULTS,
    WRONG_TYPE,
    builtin_entry_points,
    make_distribution,
)

import simclr
from simclr import plugin_manager
from simclr.errors import ConfigError, PluginError, TrainingError
from simclr.plugin_manager import DISABLE_ENV, load_plugins


def test_builtins_register_every_kind():
    system = load_plugins()
    assert not system.registry.failures
    for kind in ("loss", "miner", "backbone", "optimizer", "dataset", "callback"):
        assert system.registry.names(kind), f"no built-in {kind}"
    component = system.registry.get("loss", "nt_xent")
    assert component.provider.distribution == "simclr"
    assert component.description


def test_third_party_component_is_built_and_validated(tmp_path, monkeypatch):
    eps = make_distribution(tmp_path, "simclr-plugin-good", {"good": GOOD_LOSS}, version="2.3", monkeypatch=monkeypatch)
    system = load_plugins(builtin_entry_points() + eps)
    component = system.registry.get("loss", "scaled_distance")
    assert (component.provider.plugin, component.provider.distribution, component.provider.version) == (
        "good",
        "simclr-plugin-good",
        "2.3",
    )
    loss = component.build(component.validate({"scale": 2.0}))
    import torch

    assert loss(torch.ones(2, 3), torch.zeros(2, 3)).item() == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="loss.scale"):
        component.validate({"scale": -1}, path="loss")


MISSPELLED_MODULE = """
import simclr

@simclr.hookimpl
def simclr_register_loss(registry):
    registry.add("never", object, None, "never registered")

def simclr_on_log(run, record):
    pass

@simclr.hookimpl
def simclr_on_epoch_ends(run, epoch, record):
    pass

@simclr.hookimpl(optionalhook=True)
def simclr_register_schedulers(registry):  # a hook of a later simclr: fine
    pass
"""


def test_a_plugin_modules_hooks_that_would_never_be_called_are_warned_about(tmp_path, monkeypatch, caplog):
    modules = {"typos": MISSPELLED_MODULE, "empty": "import simclr\n", "good": GOOD_LOSS}
    eps = make_distribution(tmp_path, "simclr-plugin-typos", modules, monkeypatch=monkeypatch)
    with caplog.at_level("WARNING", logger="simclr"):
        system = load_plugins(builtin_entry_points() + eps)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    typos = "plugin 'typos' (distribution simclr-plugin-typos 1.0): "
    assert sorted(warnings) == sorted(
        [
            typos + "simclr_on_epoch_ends is not a hook, so it is never called; did you mean simclr_on_epoch_end?",
            typos + "simclr_on_log is not marked with @simclr.hookimpl, so it is never called; decorate it",
            typos + "simclr_register_loss is not a hook, so it is never called; did you mean simclr_register_losses?",
            "plugin 'empty' (distribution simclr-plugin-typos 1.0): it has no hook, so it does nothing; give it "
            f"functions named {', '.join(plugin_manager.PLUGIN_HOOKS)} marked with @simclr.hookimpl",
        ]
    )
    assert "scaled_distance" in system.registry.names("loss")  # the good plugin and the built-ins are unaffected
    # one process per machine warns: not torchrun's other local ranks, nor those `--nproc` started after warning
    for variable, value in (("LOCAL_RANK", "1"), (plugin_manager.PLUGINS_CHECKED_ENV, "1")):
        caplog.clear()
        with monkeypatch.context() as env:
            env.setenv(variable, value)
            with caplog.at_level("WARNING", logger="simclr"):
                load_plugins(builtin_entry_points() + eps)
        assert not caplog.records, variable


def test_commands_that_build_components_warn_of_a_plugin_that_failed_to_load(tmp_path, monkeypatch, caplog):
    from simclr.cli.main import main

    eps = make_distribution(
        tmp_path, "simclr-plugin-broken", {"broken_import": RAISES_AT_IMPORT}, monkeypatch=monkeypatch
    )
    monkeypatch.setattr(plugin_manager, "_system", load_plugins(builtin_entry_points() + eps))
    with caplog.at_level("WARNING", logger="simclr"):
        assert main(["eval", str(tmp_path / "no-run")]) == 2
    assert (
        "plugin 'broken_import' (distribution simclr-plugin-broken 1.0) failed to load, so its components are not "
        "available: ImportError: this plugin needs a package that is not installed"
    ) in caplog.text
    caplog.clear()
    assert main(["config", "schema"]) == 0  # builds nothing: `plugins list` is where failures are listed
    assert "failed to load" not in caplog.text


def test_broken_import_and_registration_are_isolated(tmp_path, monkeypatch):
    eps = make_distribution(
        tmp_path,
        "simclr-plugin-broken",
        {"broken_import": RAISES_AT_IMPORT, "broken_hook": RAISES_IN_HOOK},
        monkeypatch=monkeypatch,
    )
    system = load_plugins(builtin_entry_points() + eps)
    failures = {f["plugin"]: f for f in system.registry.failures}
    assert failures["broken_import"]["stage"] == "import"
    assert "not installed" in failures["broken_import"]["error"]
    assert "simclr-plugin-broken" in failures["broken_import"]["distribution"]
    assert f"{DISABLE_ENV}=broken_import" in failures["broken_import"]["hint"]
    assert failures["broken_hook"]["stage"] == "registration"
    assert "registration exploded" in failures["broken_hook"]["error"]
    # a name nothing registered points at the plugin that failed to load, which may have provided it
    message = system.registry.unknown("dataset", "lab_scans")
    assert message.startswith("unknown dataset 'lab_scans'; installed: ")
    assert "; it may come from a plugin that is not loaded: " in message
    assert "plugin 'broken_import' (distribution simclr-plugin-broken 1.0) failed to load" in message
    assert "half_registered" not in system.registry.names("loss")
    # many plugins that are not loaded: three are named, the rest counted
    system.registry.disabled.extend(f"plugin 'off{i}' (distribution off{i} 1.0)" for i in range(5))
    message = system.registry.unknown("dataset", "lab_scans")
    assert message.count("failed to load") + message.count("is disabled") == 3
    assert message.endswith("; 4 more (`simclr plugins list`)")
    with pytest.raises(ConfigError, match="plugin 'broken_hook' .*failed to register: RuntimeError: registration"):
        system.registry.get("loss", "half_registered")
    assert "nt_xent" in system.registry.names("loss")


def test_duplicate_name_names_both_providers(tmp_path, monkeypatch):
    eps = make_distribution(tmp_path, "simclr-plugin-dupe", {"dupe": DUPLICATE_NT_XENT}, monkeypatch=monkeypatch)
    system = load_plugins(builtin_entry_points() + eps)
    assert system.registry.get("loss", "nt_xent").provider.plugin == "losses"
    failure = next(f for f in system.registry.failures if f["plugin"] == "dupe")
    assert "loss 'nt_xent'" in failure["error"]
    assert "plugin 'losses' (distribution simclr" in failure["error"]
    assert "plugin 'dupe' (distribution simclr-plugin-dupe 1.0)" in failure["error"]


def test_plugin_clashing_with_a_builtin_is_rejected_whole(tmp_path, monkeypatch):
    # "clash" sorts before "losses" and is listed first: the built-in must still win
    eps = make_distribution(
        tmp_path, "simclr-plugin-clash", {"clash": CLASHING_MINERS}, version="0.2", monkeypatch=monkeypatch
    )
    system = load_plugins(eps + builtin_entry_points())
    monkeypatch.setattr(plugin_manager, "_system", system)

    assert system.registry.get("miner", "hardest").provider.plugin == "losses"
    loss = simclr.create("loss", "margin_triplet", miner="hardest")
    assert loss.miner is simclr.create("miner", "hardest")
    assert "lenient" not in system.registry.names("miner")
    assert system.manager.get_plugin("clash") is None
    system.call_lifecycle("simclr_on_log", strict=True, run=None, record={})

    [failure] = [f for f in system.registry.failures if f["plugin"] == "clash"]
    assert failure["distribution"] == "simclr-plugin-clash 0.2"
    assert failure["stage"] == "registration"
    assert "miner 'hardest'" in failure["error"]
    assert "plugin 'clash' (distribution simclr-plugin-clash 0.2)" in failure["error"]
    assert "plugin 'losses' (distribution simclr " in failure["error"]
    assert f"{DISABLE_ENV}=clash" in failure["hint"]

    with pytest.raises(ConfigError) as info:
        simclr.create("miner", "lenient")
    message = str(info.value)
    assert "unknown miner 'lenient'" in message
    assert "plugin 'clash' (distribution simclr-plugin-clash 0.2)" in message and "miner 'hardest'" in message


def test_clash_between_third_party_plugins_keeps_the_first_loaded(tmp_path, monkeypatch):
    late = make_distribution(tmp_path / "b", "simclr-plugin-b", {"beta": SHARED_LOSS}, monkeypatch=monkeypatch)
    early = make_distribution(tmp_path / "a", "simclr-plugin-a", {"alpha": SHARED_LOSS}, monkeypatch=monkeypatch)
    for order in (late + early, early + late):
        system = load_plugins(order)
        assert system.registry.get("loss", "shared").provider.plugin == "alpha"
        [failure] = system.registry.failures
        assert failure["plugin"] == "beta"
        assert "plugin 'alpha' (distribution simclr-plugin-a 1.0)" in failure["error"]
        assert f"{DISABLE_ENV}=beta" in failure["hint"]


def test_entry_point_name_taken_by_another_distribution_is_reported(tmp_path, monkeypatch):
    eps = make_distribution(tmp_path, "simclr-plugin-shadow", {"losses": GOOD_LOSS}, monkeypatch=monkeypatch)
    system = load_plugins(eps + builtin_entry_points())
    assert system.registry.get("loss", "nt_xent").provider.distribution == "simclr"
    assert "scaled_distance" not in system.registry.names("loss")
    [failure] = system.registry.failures
    assert failure["distribution"] == "simclr-plugin-shadow 1.0"
    assert "plugin 'losses' (distribution simclr " in failure["error"]
    assert "uninstall simclr-plugin-shadow" in failure["hint"]


def test_plugin_registering_a_name_twice_is_rejected(tmp_path, monkeypatch):
    eps = make_distribution(tmp_path, "simclr-plugin-twice", {"twice": TWICE}, monkeypatch=monkeypatch)
    system = load_plugins(builtin_entry_points() + eps)
    [failure] = [f for f in system.registry.failures if f["plugin"] == "twice"]
    assert "loss 'echo' is registered twice" in failure["error"]
    assert "echo" not in system.registry.names("loss") and "unique" not in system.registry.names("miner")


def test_disable_env_var_skips_plugins(tmp_path, monkeypatch):
    eps = make_distribution(tmp_path, "simclr-plugin-dupe2", {"dupe2": DUPLICATE_NT_XENT}, monkeypatch=monkeypatch)
    monkeypatch.setenv(DISABLE_ENV, "dupe2, callbacks")
    system = load_plugins(builtin_entry_points() + eps)
    assert system.registry.get("loss", "nt_xent").provider.plugin == "losses"
    assert system.registry.names("callback") == []
    assert not system.registry.failures
    assert system.registry.disabled == [
        "plugin 'callbacks' (distribution simclr " + system.registry.get("loss", "nt_xent").provider.version + ")",
        "plugin 'dupe2' (distribution simclr-plugin-dupe2 1.0)",
    ]
    assert system.registry.unknown("callback", "plots").endswith(
        "it may come from a plugin that is not loaded: plugin 'callbacks' (distribution simclr "
        f"{system.registry.get('loss', 'nt_xent').provider.version}) is disabled by SIMCLR_DISABLE_PLUGINS; "
        "plugin 'dupe2' (distribution simclr-plugin-dupe2 1.0) is disabled by SIMCLR_DISABLE_PLUGINS "
        "(`simclr plugins list`)"
    )


def test_factory_returning_wrong_type_names_the_plugin(tmp_path, monkeypatch):
    eps = make_distribution(
        tmp_path, "simclr-plugin-wrong", {"wrong": WRONG_TYPE}, version="0.3", monkeypatch=monkeypatch
    )
    system = load_plugins(builtin_entry_points() + eps)
    component = system.registry.get("loss", "not_a_module")
    with pytest.raises(PluginError, match=r"plugin 'wrong' \(distribution simclr-plugin-wrong 0.3\).*torch.nn.Module"):
        component.build(component.validate({}))


def test_a_backbone_with_a_feature_dim_of_another_type_is_told_so(monkeypatch):
    import torch

    backbones = plugin_manager.plugin_system().registry.components["backbone"]

    class TextDim(torch.nn.Module):
        feature_dim = "8"

    text_dim = dataclasses.replace(backbones["small_resnet"], factory=lambda params, image_size: TextDim())
    with pytest.raises(PluginError, match=r"returned TextDim \(its feature_dim is '8'\), but a backbone factory"):
        text_dim.build(text_dim.validate({}), 16)


def test_params_model_must_forbid_extra_keys(tmp_path, monkeypatch):
    eps = make_distribution(tmp_path, "simclr-plugin-lax", {"lax": LAX_PARAMS}, monkeypatch=monkeypatch)
    system = load_plugins(builtin_entry_points() + eps)
    failure = next(f for f in system.registry.failures if f["plugin"] == "lax")
    assert "extra='forbid'" in failure["error"]


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("negative_default", r"has invalid defaults: temperature \(-0.5\): Input should be greater than 0"),
        ("name_field", "has a field called 'name', which is the component's own key"),
        ("default_loss", "is registered with default=True, which only a callback takes"),
        ("spaced_name", "loss name 'bad name!' .* must be letters, digits"),
    ],
)
def test_registration_mistakes_reject_the_plugin_saying_where(tmp_path, monkeypatch, plugin, message):
    eps = make_distribution(tmp_path, "simclr-plugin-bad", {plugin: BAD_REGISTRATIONS[plugin]}, monkeypatch=monkeypatch)
    system = load_plugins(builtin_entry_points() + eps)
    [failure] = system.registry.failures
    assert failure["stage"] == "registration" and re.search(message, failure["error"]), failure["error"]
    # where: the params class, or the plugin's own registry.add line, never simclr's code
    source = str(tmp_path / f"simclr_plugin_bad_{plugin}.py")
    assert re.search(rf"at {re.escape(source)}:\d+", failure["error"]), failure["error"]
    losses = [system.registry.get("loss", name) for name in system.registry.names("loss")]
    assert {loss.provider.distribution for loss in losses} == {"simclr"}


def test_a_default_is_validated_like_a_given_value(tmp_path, monkeypatch):
    """pydantic takes defaults as they are: a DataPath default '~/scans' stayed a str with ~ unexpanded."""
    eps = make_distribution(tmp_path, "simclr-plugin-home", {"home": HOME_DEFAULT}, monkeypatch=monkeypatch)
    system = load_plugins(builtin_entry_points() + eps)
    component = system.registry.get("dataset", "scans")
    assert component.validate({}).root == Path("~/scans").expanduser()
    assert component.validate({"root": "~/other"}).root == Path("~/other").expanduser()
    from simclr_plugin_home_home import Params

    assert type(component.validate({})) is Params  # the plugin's own class: a DataLoader worker can unpickle it
    assert pickle.loads(pickle.dumps(component.validate({}))) == component.validate({})


def test_defaults_are_checked_at_registration_as_they_are_validated_when_used(tmp_path, monkeypatch):
    """By the model's own validators too (a field_validator's rejection used to reach the user as an error in
    their config, at a key they never wrote), but a default naming another component is checked when used."""
    eps = make_distribution(tmp_path, "simclr-plugin-defaults", VALIDATED_DEFAULTS, monkeypatch=monkeypatch)
    system = load_plugins(builtin_entry_points() + eps)
    failures = {f["plugin"]: f["error"] for f in system.registry.failures}
    assert set(failures) == {"after_validator", "before_validator", "before_validator_beside_a_required_field"}
    assert "has invalid defaults: t (-1.0): t must be positive" in failures["after_validator"]
    crash = "its validators fail on the defaults: AttributeError: 'tuple' object has no attribute 'split'"
    assert crash in failures["before_validator"] and crash in failures["before_validator_beside_a_required_field"]
    aliased = system.registry.get("loss", "aliased")  # by alias, by name (populate_by_name), by alias choice
    assert aliased.validate({}).model_dump() == {"temp": 0.5, "margin": 1.0, "scaled": 1.0}
    assert aliased.validate({"temperature": 0.2, "m": 3.0}).model_dump() == {"temp": 0.2, "margin": 3.0, "scaled": 0.4}
    assert aliased.validate({"temp": 0.9, "margin": 2.0}).model_dump() == {"temp": 0.9, "margin": 2.0, "scaled": 1.8}
    assert aliased.validate({"temp": 0.9}).model_fields_set == {"temp"}
    monkeypatch.setattr(plugin_manager, "_system", system)  # the registry a used ComponentRef looks in
    mined = system.registry.get("loss", "mined")
    assert mined.validate({}).miner == "everything" and mined.validate({"miner": None}).miner is None
    ranged = system.registry.get("loss", "ranged")  # its validator needs a required field: fine when given
    assert ranged.validate({"low": 0.5}).high == 1.0
    with pytest.raises(ConfigError, match="high must be at least low"):
        ranged.validate({"low": 2.0})


def test_validated_params_say_which_fields_were_given(tmp_path, monkeypatch):
    """Defaults are passed to the model to be validated, but model_fields_set stays what the config gave (a
    plugin may pass on only those with model_dump(exclude_unset=True))."""
    adam = load_plugins().registry.get("optimizer", "adam")
    assert adam.validate({"lr": 0.1}).model_fields_set == {"lr"} and adam.validate({}).model_fields_set == set()
    assert adam.validate({"lr": 0.1}).model_dump(exclude_unset=True) == {"lr": 0.1}


def test_lifecycle_hook_error_is_reported_once_unless_strict(tmp_path, monkeypatch, caplog):
    eps = make_distribution(tmp_path, "simclr-plugin-noisy", {"noisy": RAISES_IN_LIFECYCLE}, monkeypatch=monkeypatch)
    system = load_plugins(builtin_entry_points() + eps)
    calls = []

    class Recorder:
        @simclr.hookimpl
        def simclr_on_log(self, run, record):
            calls.append(record)

    system.register_object(Recorder(), "recorder")
    for i in range(3):
        system.call_lifecycle("simclr_on_log", run=None, record={"step": i})
    assert [r["step"] for r in calls] == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if "logger is broken" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "plugin 'noisy' (distribution simclr-plugin-noisy 1.0) raised in simclr_on_log and is ignored: "
        "ValueError: logger is broken"
    )
    with pytest.raises(TrainingError, match="simclr-plugin-noisy.*logger is broken"):
        system.call_lifecycle("simclr_on_log", strict=True, run=None, record={"step": 9})


def test_simclr_train_strict_stops_on_a_raising_hook_with_exit_status_1(tmp_path, monkeypatch, capsys):
    """The run-time failure's exit status, end to end: without --strict the run finishes despite the hook."""
    import yaml

    from simclr.cli.main import main

    eps = make_distribution(tmp_path, "simclr-plugin-noisy", {"noisy": RAISES_IN_LIFECYCLE}, monkeypatch=monkeypatch)
    monkeypatch.setattr(plugin_manager, "_system", load_plugins(builtin_entry_points() + eps))
    experiment = {
        "data": {"dataset": {"name": "synthetic", "image_size": 16, "count": 64}, "batch_size": 32},
        "model": {"backbone": {"name": "small_resnet", "width": 8}},
        "loss": {"name": "nt_xent"},
        "optimizer": {"name": "adam"},
        "train": {"epochs": 1, "device": "cpu", "callbacks": []},
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(experiment))
    argv = ["train", str(tmp_path / "exp.yaml"), "--no-progress", "--out"]
    assert main([*argv, str(tmp_path / "strict"), "--strict"]) == 1
    assert "simclr-plugin-noisy" in capsys.readouterr().err
    assert main([*argv, str(tmp_path / "lenient")]) == 0
    assert (tmp_path / "lenient" / "checkpoints" / "last.pt").is_file()


def test_lifecycle_error_of_a_config_callback_names_the_callback(caplog):
    system = load_plugins(builtin_entry_points())

    class Plots:
        @simclr.hookimpl
        def simclr_on_train_end(self, run, record):
            raise ValueError("plot writer is broken")

    system.register_object(Plots(), "callback:1:plots", label="callback 'plots' (from train.callbacks)")
    system.register_object(Plots(), "unlabelled")
    system.call_lifecycle("simclr_on_train_end", run=None, record={"status": "done"})
    warnings = sorted(r.getMessage() for r in caplog.records if "plot writer is broken" in r.getMessage())
    assert len(warnings) == 2
    assert warnings[0].startswith(
        "callback 'plots' (from train.callbacks) raised in simclr_on_train_end and is ignored: "
        "ValueError: plot writer is broken"
    )
    assert warnings[1].startswith("callback object 'unlabelled' raised in simclr_on_train_end and is ignored: ")


def test_a_callback_whose_hooks_would_never_be_called_is_warned_about(caplog):
    system = load_plugins(builtin_entry_points())
    calls = []

    class Forgot:  # hooks without @simclr.hookimpl, and a misspelled one
        def simclr_on_log(self, run, record):
            calls.append(record)

        @simclr.hookimpl
        def simclr_on_epoch_ends(self, run, epoch, record):
            calls.append(record)

    class Empty:
        def on_log(self, record):
            calls.append(record)

    with caplog.at_level("WARNING", logger="simclr"):
        system.register_object(Forgot(), "callback:0:forgot", label="callback 'forgot' (from train.callbacks)")
        system.register_object(Empty(), "callback:1:empty", label="callback 'empty' (from train.callbacks)")
    system.call_lifecycle("simclr_on_log", run=None, record={"step": 1})
    assert calls == []  # what the warnings are about
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "callback 'forgot' (from train.callbacks): simclr_on_epoch_ends is not a lifecycle hook, so it is never "
        "called; did you mean simclr_on_epoch_end?"
    ) in messages
    assert (
        "callback 'forgot' (from train.callbacks): simclr_on_log is not marked with @simclr.hookimpl, so it is "
        "never called; decorate it"
    ) in messages
    assert any(m.startswith("callback 'empty' (from train.callbacks): it has no lifecycle hook") for m in messages)
    caplog.clear()
    with caplog.at_level("WARNING", logger="simclr"):
        system.register_object(_Marked(), "callback:2:marked")
        system.register_object(_Renamed(), "callback:3:renamed")
    assert caplog.records == []


class _Marked:
    @simclr.hookimpl
    def simclr_on_log(self, run, record):
        pass


class _Renamed:
    @simclr.hookimpl(specname="simclr_on_epoch_end")  # pluggy's way to implement a hook under another name
    def at_epoch_end(self, run, epoch, record):
        pass


def test_plugins_list_json_reports_broken_plugin_and_keeps_builtins(tmp_path, cli):
    make_distribution(tmp_path, "simclr-plugin-broken-cli", {"broken_cli": RAISES_AT_IMPORT})
    result = cli("plugins", "list", "--json", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    names = {(c["kind"], c["name"]) for c in listing["components"]}
    assert {
        ("loss", "nt_xent"),
        ("dataset", "digits"),
        ("backbone", "resnet18"),
        ("optimizer", "lars"),
    } <= names
    broken = [f for f in listing["failures"] if f["plugin"] == "broken_cli"]
    assert broken and "simclr-plugin-broken-cli" in broken[0]["distribution"]


def test_a_plugin_that_fails_to_load_is_reported_at_its_own_file_and_entry_point(tmp_path, monkeypatch):
    """Not at Python's import machinery or pluggy, where the error surfaces."""
    modules = {
        "syntax": "def broken(:\n    pass\n",
        "hook_arguments": "import simclr\n\n@simclr.hookimpl\ndef simclr_on_log(run, rec):\n    pass\n",
    }
    eps = make_distribution(tmp_path, "simclr-plugin-typos", modules, monkeypatch=monkeypatch)
    info = tmp_path / "simclr_plugin_typos-1.0.dist-info"
    with (info / "entry_points.txt").open("a") as entry_points:
        entry_points.write("attribute = simclr_plugin_typos_syntax:missing\n")
    eps = list(importlib.metadata.Distribution.at(info).entry_points)
    failures = {f["plugin"]: f["error"] for f in load_plugins(builtin_entry_points() + eps).registry.failures}
    assert failures["syntax"] == (
        f"SyntaxError: invalid syntax (at {tmp_path / 'simclr_plugin_typos_syntax.py'}:1) "
        "(entry point 'syntax = simclr_plugin_typos_syntax')"
    )
    assert failures["hook_arguments"].startswith(
        "hook 'simclr_on_log'; hookimpl definition: simclr_on_log(run, rec); Argument(s) {'rec'} are declared"
    )
    assert f"(at {tmp_path / 'simclr_plugin_typos_hook_arguments.py'}:3)" in failures["hook_arguments"]
    assert "(entry point 'attribute = simclr_plugin_typos_syntax:missing')" in failures["attribute"]
    assert not any("importlib" in error or "pluggy" in error or "\n" in error for error in failures.values())


def test_a_callback_refused_by_the_hook_check_is_left_registered_nowhere():
    """pluggy keeps the hooks it could register of an object it refuses: the check must not use the live manager,
    or the refused callback's other hooks would run in later runs of the process."""

    class HalfRight:
        @simclr.hookimpl
        def simclr_on_epoch_end(self, run, epoch, record):
            pass

        @simclr.hookimpl
        def simclr_on_log(self, run, rec):
            pass

    system = plugin_manager.plugin_system()
    callback = HalfRight()
    refused = r"callback 'half': hook 'simclr_on_log'; .*\{'rec'\}.* \(at .*test_plugins.py:\d+\)"
    with pytest.raises(PluginError, match=refused):
        system.check_hooks(callback, "callback 'half'")
    assert not system.manager.is_registered(callback)
    assert all(impl.plugin is not callback for impl in system.manager.hook.simclr_on_epoch_end.get_hookimpls())


def test_an_entry_point_name_two_third_party_distributions_use_loads_neither(tmp_path, monkeypatch):
    """Which one would win is an accident of their names: installing a second package must not silently replace
    the components of the first, so neither is loaded and each is reported with the rival to uninstall."""
    first = make_distribution(tmp_path / "z", "simclr-plugin-zeta", {"xyz": GOOD_LOSS}, monkeypatch=monkeypatch)
    second = make_distribution(tmp_path / "a", "simclr-plugin-alpha", {"xyz": TWICE}, monkeypatch=monkeypatch)
    system = load_plugins(first + second + builtin_entry_points())
    assert "scaled_distance" not in system.registry.names("loss") and "unique" not in system.registry.names("miner")
    failures = {f["distribution"]: f for f in system.registry.failures}
    assert set(failures) == {"simclr-plugin-zeta 1.0", "simclr-plugin-alpha 1.0"}
    for mine, rival in (("zeta", "alpha"), ("alpha", "zeta")):
        failure = failures[f"simclr-plugin-{mine} 1.0"]
        assert (
            "plugin name 'xyz' is used by the distributions simclr-plugin-alpha, simclr-plugin-zeta"
            in (failure["error"])
        )
        assert f"pip uninstall simclr-plugin-{rival}" in failure["hint"]
