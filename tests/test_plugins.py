"""Plugin discovery: isolation of broken plugins, duplicates, disabling, type checks, lifecycle isolation."""

from __future__ import annotations

import json

import pytest
from plugin_fixtures import (
    DUPLICATE_NT_XENT,
    GOOD_LOSS,
    LAX_PARAMS,
    RAISES_AT_IMPORT,
    RAISES_IN_HOOK,
    RAISES_IN_LIFECYCLE,
    WRONG_TYPE,
    builtin_entry_points,
    make_distribution,
)

import simclr
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
    assert "half_registered" not in system.registry.names("loss")
    assert "nt_xent" in system.registry.names("loss")


def test_duplicate_name_names_both_providers(tmp_path, monkeypatch):
    eps = make_distribution(tmp_path, "simclr-plugin-dupe", {"dupe": DUPLICATE_NT_XENT}, monkeypatch=monkeypatch)
    system = load_plugins(builtin_entry_points() + eps)
    with pytest.raises(PluginError) as info:
        system.registry.get("loss", "nt_xent")
    message = str(info.value)
    assert "plugin 'losses' (distribution simclr" in message and "simclr-plugin-dupe" in message
    assert any("nt_xent" in f["error"] for f in system.registry.failures)


def test_disable_env_var_skips_plugins(tmp_path, monkeypatch):
    eps = make_distribution(tmp_path, "simclr-plugin-dupe2", {"dupe2": DUPLICATE_NT_XENT}, monkeypatch=monkeypatch)
    monkeypatch.setenv(DISABLE_ENV, "dupe2, callbacks")
    system = load_plugins(builtin_entry_points() + eps)
    assert system.registry.get("loss", "nt_xent").provider.plugin == "losses"
    assert system.registry.names("callback") == []
    assert not system.registry.failures


def test_factory_returning_wrong_type_names_the_plugin(tmp_path, monkeypatch):
    eps = make_distribution(
        tmp_path, "simclr-plugin-wrong", {"wrong": WRONG_TYPE}, version="0.3", monkeypatch=monkeypatch
    )
    system = load_plugins(builtin_entry_points() + eps)
    component = system.registry.get("loss", "not_a_module")
    with pytest.raises(PluginError, match=r"plugin 'wrong' \(distribution simclr-plugin-wrong 0.3\).*torch.nn.Module"):
        component.build(component.validate({}))


def test_params_model_must_forbid_extra_keys(tmp_path, monkeypatch):
    eps = make_distribution(tmp_path, "simclr-plugin-lax", {"lax": LAX_PARAMS}, monkeypatch=monkeypatch)
    system = load_plugins(builtin_entry_points() + eps)
    failure = next(f for f in system.registry.failures if f["plugin"] == "lax")
    assert "extra='forbid'" in failure["error"]


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
    warnings = [r for r in caplog.records if "logger is broken" in r.getMessage()]
    assert len(warnings) == 1 and "simclr-plugin-noisy" in warnings[0].getMessage()
    with pytest.raises(TrainingError, match="simclr-plugin-noisy.*logger is broken"):
        system.call_lifecycle("simclr_on_log", strict=True, run=None, record={"step": 9})


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
