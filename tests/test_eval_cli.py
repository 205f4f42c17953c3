"""`simclr eval` and `simclr export` as a user runs them (in a subprocess where it matters): output, exit codes,
messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import run_simclr

from simclr.checkpoint import save_checkpoint
from simclr.cli.eval_cmd import evaluate_and_report, report_rows
from simclr.cli.main import main
from simclr.config import experiment_from_dict, resolved_dict
from simclr.errors import UserError
from simclr.evaluate import evaluate_run
from simclr.model import build_model

CONFIG = {
    "data": {"dataset": {"name": "digits", "image_size": 8}, "batch_size": 64},
    "model": {"backbone": {"name": "small_resnet", "width": 4}},
    "loss": {"name": "nt_xent"},
    "optimizer": {"name": "adam"},
    "train": {"seed": 3},
    "eval": {"labels_per_class": [1, 2], "few_label_draws": 2, "knn_k": 10},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory as a GPU machine's trainer leaves it (config.yaml, checkpoints/last.pt holding CUDA
    tensors), weights untrained."""
    run = tmp_path_factory.mktemp("cli") / "run"
    experiment = experiment_from_dict(CONFIG)
    torch.manual_seed(0)
    model = build_model(experiment, 8)
    state = {
        "model": model.state_dict(),
        "config": resolved_dict(experiment),
        "epoch": 4,
        "global_step": 40,
        "device": "cuda:0",
        "feature_dim": model.feature_dim,
    }
    with pytest.MonkeyPatch.context() as patch:  # torch.save then tags every tensor as stored on the GPU
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        save_checkpoint(state, run / "checkpoints" / "last.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(resolved_dict(experiment)))
    return run


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows what a CPU-only machine does with the file")
def test_the_runs_checkpoint_really_holds_cuda_tensors(run_dir):
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


def test_eval_prints_a_table_with_the_baseline_beside(run_dir):
    result = run_simclr("eval", str(run_dir), "--device", "cpu", "--labels-per-class", "1", "3")
    assert result.returncode == 0, result.stderr
    for text in ("pre-trained", "random init", "gain", "linear top-1", "linear top-5", "3 labels/class", "kNN"):
        assert text in result.stdout
    written = json.loads((run_dir / "eval.json").read_text())
    assert set(written["few_label"]) == {"1", "3"} and written["trained_on"] == "cuda:0"
    # the numbers printed are those written, in the right columns, with the right sign of the gain
    cells = [re.split(r"\s{2,}", re.sub("[│┃]", "  ", line).strip()) for line in result.stdout.splitlines()]
    rows = {row[0]: row[1:] for row in cells}
    pretrained, random_init = written["linear"]["top1"], written["baseline"]["linear"]["top1"]
    assert rows["linear top-1"] == [f"{pretrained:.2f}", f"{random_init:.2f}", f"{pretrained - random_init:+.2f}"]
    knn = f"kNN top-1 (k={written['knn']['k']})"
    assert rows[knn][:2] == [f"{written['knn']['top1']:.2f}", f"{written['baseline']['knn']['top1']:.2f}"]
    assert f"wrote {run_dir / 'eval.json'}" in "".join(result.stderr.split("\n"))


def test_eval_json_flags_override_the_config(run_dir, capsys, monkeypatch):
    import simclr.evaluate as evaluate_module

    seen = []
    for name in ("linear_probe", "few_label_probe"):
        probe = getattr(evaluate_module, name)

        def recording(*args, _name=name, _probe=probe, **kwargs):
            seen.append((_name, kwargs["C"], kwargs["backend"]))
            return _probe(*args, **kwargs)

        monkeypatch.setattr(evaluate_module, name, recording)
    argv = ["eval", str(run_dir), "--json", "--no-baseline", "--knn-k", "7", "--C", "0.5", "--probe", "torch"]
    assert main(argv) == 0
    assert seen == [("linear_probe", 0.5, "torch"), ("few_label_probe", 0.5, "torch")]  # what the probes got
    data = json.loads(capsys.readouterr().out)
    assert "baseline" not in data and data["knn"]["k"] == 7
    assert data["settings"]["C"] == 0.5 and data["settings"]["probe"] == "torch"
    assert set(data["few_label"]) == {"1", "2"}


def test_simclr_debug_adds_the_traceback_and_keeps_the_exit_status(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SIMCLR_DEBUG", "1")
    assert main(["eval", str(tmp_path / "no-such-run")]) == 2
    stderr = capsys.readouterr().err
    assert "Traceback (most recent call last)" in stderr and "no such checkpoint" in stderr


def test_missing_and_corrupted_checkpoints_exit_2(tmp_path, run_dir):
    missing = run_simclr("eval", str(tmp_path / "no-such-run"))
    assert missing.returncode == 2
    assert "no such checkpoint" in missing.stderr and "Traceback" not in missing.stderr
    truncated = tmp_path / "broken.pt"
    truncated.write_bytes((run_dir / "checkpoints" / "last.pt").read_bytes()[:1000])
    broken = run_simclr("eval", str(truncated))
    assert broken.returncode == 2
    assert "not a readable checkpoint" in broken.stderr and "Traceback" not in broken.stderr
    assert not (tmp_path / "eval.json").exists()


def test_bad_arguments_exit_2(run_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(run_dir), "--knn-k", "0"])
    assert exit_info.value.code == 2 and "must be > 0" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--device", "cuda:7"]) == 2
    assert "--device cuda:7" in capsys.readouterr().err
    # what argparse does not see, in Python: the schema's messages, without pydantic's "Value error, "
    expected = "invalid evaluation setting: eval.linear.C: Input should be greater than 0; eval.labels_per_class: "
    with pytest.raises(UserError, match=re.escape(expected + "every K must be >= 1") + "$"):
        evaluate_run(run_dir, device="cpu", ks=[2, 0], C=-1.0)


def test_evaluate_and_report_prints_and_returns(run_dir, capsys):
    result = evaluate_and_report(run_dir, device="cpu")
    printed = capsys.readouterr().out
    assert set(result["baseline"]) == {"linear", "few_label", "knn"}
    for label, _, _ in report_rows(result):
        assert label in printed


def test_export_command_writes_a_loadable_file(run_dir, tmp_path, capsys):
    out = tmp_path / "backbone.pt"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert "not a torchvision architecture" in capsys.readouterr().err
    state = torch.load(out, weights_only=True)
    assert "stem.0.weight" in state and not any(key.startswith("head.") for key in state)
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "other.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--out", str(out), "--overwrite"]) == 0


def test_train_evaluates_with_the_dataset_it_trained_on_built_once(tmp_path, monkeypatch):
    """eval.after_train reuses the trainer's dataset: an image folder's labelled images are not decoded twice."""
    import dataclasses

    from simclr.plugin_manager import plugin_system

    datasets = plugin_system().registry.components["dataset"]
    digits = datasets["digits"]
    built = []

    def counted(params):
        built.append(params)
        return digits.factory(params)

    monkeypatch.setitem(datasets, "digits", dataclasses.replace(digits, factory=counted))
    config = {**CONFIG, "train": {"seed": 3, "epochs": 1, "max_steps_per_epoch": 1, "device": "cpu"}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({**config, "eval": {**CONFIG["eval"], "after_train": True}}))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "exp.yaml"), "--out", str(run), "--no-progress"]) == 0
    assert json.loads((run / "eval.json").read_text())["dataset"] == "digits" and len(built) == 1
    assert main(["eval", str(run), "--no-baseline"]) == 0 and len(built) == 2  # a later evaluation builds its own
    # a resume with nothing to train evaluates the checkpoint, whose dataset is not the one --set asked for now
    resume = ["train", "--resume", str(run), "--set", "data.dataset.test_fraction=0.5", "--no-progress"]
    assert main(resume) == 0 and len(built) == 4
    result = json.loads((run / "eval.json").read_text())
    assert result["dataset_params"]["test_fraction"] == 0.25 and result["num_test"] == 450


def test_train_lets_go_of_the_trained_model_before_it_evaluates(tmp_path, monkeypatch):
    """The evaluation after training must not share the device with the run's model, optimizer state and
    device-resident images: the trainer is collected before it starts (what frees a GPU's memory)."""
    import weakref

    import simclr.cli.eval_cmd as eval_cmd
    import simclr.trainer as trainer_module

    trainers = []

    class Recorded(trainer_module.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            trainers.append(weakref.ref(self))

    alive_at_evaluation = []

    def evaluate(run_dir, device=None, built=None):
        alive_at_evaluation.append([ref() is not None for ref in trainers])
        return {}

    monkeypatch.setattr(trainer_module, "Trainer", Recorded)
    monkeypatch.setattr(eval_cmd, "evaluate_and_report", evaluate)
    config = {**CONFIG, "train": {"seed": 3, "epochs": 1, "max_steps_per_epoch": 1, "device": "cpu"}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({**config, "eval": {**CONFIG["eval"], "after_train": True}}))
    assert main(["train", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert alive_at_evaluation == [[False]]


def test_sigterm_stops_any_command_like_ctrl_c(monkeypatch, capsys):
    """Outside training (an evaluation, a report, a sweep between runs) a scheduler's SIGTERM exits 130 with a
    message, not 143 from the default handler; the process's own handler is back afterwards."""
    import os
    import signal

    from simclr.cli import report_cmd

    def terminated(args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(report_cmd, "run", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["report", "."]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
