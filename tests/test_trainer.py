"""The training engine end to end on tiny CPU runs: run directory, resume, signals, NaN, checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import run_simclr

import simclr
from simclr import config
from simclr.checkpoint import load_checkpoint, save_checkpoint
from simclr.errors import PluginError, TrainingError, UserError
from simclr.plugin_manager import plugin_system
from simclr.trainer import Interrupted, Trainer

TINY = {
    "name": "tiny",
    "data": {"dataset": {"name": "synthetic", "image_size": 16, "count": 96}, "batch_size": 32},
    "model": {"backbone": {"name": "small_resnet"}, "projection": {"out_dim": 16}},
    "loss": {"name": "nt_xent", "temperature": 0.5},
    "optimizer": {"name": "adam", "lr": 0.001},
    "schedule": {"warmup_epochs": 1},
    "train": {"epochs": 2, "device": "cpu", "log_every": 1, "seed": 3},
}


def tiny(overrides=()) -> config.Experiment:
    return config.experiment_from_dict(TINY, list(overrides))


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_run_directory_contents(tmp_path):
    run = tmp_path / "run"
    last = Trainer(tiny(["train.knn_monitor_every=2", "eval.knn_k=5"]), run, show_progress=False).fit()
    assert last["epoch"] == 1 and last["step"] == 6
    assert yaml.safe_load((run / "config.yaml").read_text())["loss"] == {"name": "nt_xent", "temperature": 0.5}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["type"] == "step"]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6] and len(epochs) == 2
    assert "knn_top1" not in epochs[0] and 0 <= epochs[1]["knn_top1"] <= 100  # the online monitor, every 2 epochs
    for record in steps:
        assert {"epoch", "step", "loss", "lr", "images_per_sec", "pos_top1", "pos_sim", "neg_sim"} <= set(record)
    assert steps[0]["lr"] == pytest.approx(0.001 / 3)  # warm-up: 1 epoch = 3 steps, first step gets 1/3
    assert (run / "checkpoints" / "last.pt").is_file()
    assert (run / "plots" / "loss.png").is_file() and (run / "plots" / "lr.png").is_file()
    state = load_checkpoint(run)
    assert state["epoch"] == 2 and state["global_step"] == 6 and state["config"]["name"] == "tiny"


def test_same_seed_reproduces_the_run(tmp_path):
    a = Trainer(tiny(), tmp_path / "a", show_progress=False)
    a.fit()
    b = Trainer(tiny(), tmp_path / "b", show_progress=False)
    b.fit()
    for key, value in weights(a.model).items():
        assert torch.equal(value, b.model.state_dict()[key]), key


class SignalAtStep:
    """A callback that sends this process a signal when a given step is logged."""

    def __init__(self, step: int, signum: int = signal.SIGINT):
        self.step, self.signum = step, signum

    @simclr.hookimpl
    def simclr_on_log(self, run, record):
        if record["step"] == self.step:
            os.kill(os.getpid(), self.signum)


DATA_PATHS = {
    "resident": ["data.augment.backend=batched"],
    "loader": ["data.augment.backend=batched", "data.device_resident=never"],
    "cpu": ["data.augment.backend=cpu"],
}


@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, data_path):
    overrides = [*DATA_PATHS[data_path], "loss={name: nt_logistic, balance: sample}"]
    straight = Trainer(tiny(overrides), tmp_path / "straight", show_progress=False)
    straight.fit()

    interrupted = Trainer(tiny(overrides), tmp_path / "resumed", show_progress=False)
    plugin_system().register_object(SignalAtStep(4), "signal-at-4")
    try:
        with pytest.raises(Interrupted, match="SIGINT"):
            interrupted.fit()
    finally:
        plugin_system().manager.unregister(name="signal-at-4")
    state = load_checkpoint(tmp_path / "resumed")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 1, 4)
    with pytest.raises(UserError, match=r"trained 1 epochs and 1 steps of epoch 2, more than train.epochs=1.*N >= 2"):
        Trainer(tiny([*overrides, "train.epochs=1"]), tmp_path / "resumed", resume=True, show_progress=False)

    resumed = Trainer(tiny(overrides), tmp_path / "resumed", resume=True, show_progress=False)
    assert resumed.stream.path == data_path
    resumed.fit()
    for key, value in weights(straight.model).items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert_same_epoch_losses(tmp_path / "straight", tmp_path / "resumed")


def assert_same_epoch_losses(straight: Path, resumed: Path) -> None:
    """The epoch records of a resumed run cover the whole of the interrupted epoch, as an uninterrupted run's."""
    epochs = {}
    for run in (straight, resumed):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        epochs[run] = [record for record in map(json.loads, lines) if record["type"] == "epoch"]
    assert [r["epoch"] for r in epochs[resumed]] == [r["epoch"] for r in epochs[straight]]
    for straight_record, resumed_record in zip(epochs[straight], epochs[resumed], strict=True):
        assert resumed_record["loss"] == pytest.approx(straight_record["loss"], rel=1e-6)


def test_a_resume_that_trains_on_says_the_runs_evaluation_is_of_an_earlier_epoch(tmp_path, capsys):
    from simclr.cli.main import main

    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=1"]), run, show_progress=False).fit()
    (run / "eval.json").write_text(json.dumps({"epoch": 1}))
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--no-progress"]) == 0
    stderr = " ".join(capsys.readouterr().err.split())
    assert f"{run / 'eval.json'} is the evaluation of epoch 1, not of the 2 trained now" in stderr
    assert f"update it with `simclr eval {run}`" in stderr
    (run / "eval.json").write_text(json.dumps({"epoch": 2}))
    assert main(["train", "--resume", str(run), "--set", "train.epochs=3", "--no-progress"]) == 0
    assert "is the evaluation of epoch" in capsys.readouterr().err
    (run / "eval.json").write_text(json.dumps({"epoch": 3}))
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0  # nothing to do: nothing stale
    assert "is the evaluation of epoch" not in capsys.readouterr().err


def test_the_report_of_a_run_without_callbacks_has_its_train_time_and_staleness(tmp_path):
    import csv

    from simclr.cli.main import main

    run = tmp_path / "runs" / "quiet"
    Trainer(tiny(["train.epochs=1", "train.callbacks=[]"]), run, show_progress=False).fit()
    (run / "eval.json").write_text(json.dumps({"epoch": 1, "linear": {"top1": 50.0}}))
    Trainer(tiny(["train.callbacks=[]"]), run, resume=True, show_progress=False).fit()
    assert not (run / "metrics.jsonl").exists()
    assert main(["report", str(tmp_path / "runs")]) == 0
    with open(tmp_path / "runs" / "report.csv") as handle:
        [row] = csv.DictReader(handle)
    trained = json.loads((run / "training.json").read_text())
    assert (row["epochs"], row["trained_epochs"]) == ("1", "2")
    assert float(row["train_seconds"]) == pytest.approx(trained["train_seconds"]) and trained["train_seconds"] > 0
    assert float(row["images_per_sec"]) == pytest.approx(6 * 32 / trained["train_seconds"])


def test_a_run_made_before_a_check_was_added_still_resumes_and_evaluates(tmp_path, capsys):
    """A run name with a folder in it (accepted before) and a blur sigma range starting at 0 (unused with blur
    off) in a run's stored config do not lock the run out; a new experiment with them is refused."""
    from simclr.cli.main import main
    from simclr.evaluate import evaluate_run

    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=1", "data.augment.blur=false"]), run, show_progress=False).fit()
    stored = yaml.safe_load((run / "config.yaml").read_text())
    stored["name"] = "ablations/tau"
    stored["data"]["augment"]["blur_sigma"] = [0.0, 2.0]
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    state = load_checkpoint(run)
    save_checkpoint({**state, "config": stored}, run / "checkpoints" / "last.pt")
    # but a value given now with --set is new, and checked as such
    config_before = (run / "config.yaml").read_text()
    bad_ratio = ["--set", "data.augment.crop_ratio=[2, 0.5]"]
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", *bad_ratio, "--no-progress"]) == 2
    assert (run / "config.yaml").read_text() == config_before
    assert "--set data.augment.crop_ratio=[2, 0.5]: data.augment.crop_ratio: " in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--no-progress"]) == 0
    assert load_checkpoint(run)["epoch"] == 2
    assert evaluate_run(run, overrides=["data.dataset.num_classes=2"], ks=[1], baseline=False, progress=False)
    with pytest.raises(config.ConfigError, match="no '/'"):
        config.experiment_from_dict(stored)


def test_a_plugins_numpy_normalisation_is_stored_as_plain_floats(tmp_path):
    """weights_only loading refuses numpy scalars: the checkpoint must still be readable."""
    import numpy as np

    trainer = Trainer(tiny(["train.epochs=1"]), tmp_path / "run", show_progress=False)
    trainer.dataset.mean = tuple(np.float32(v) for v in trainer.dataset.mean)
    trainer.dataset.std = torch.tensor(trainer.dataset.std)
    trainer.fit()
    stored = load_checkpoint(tmp_path / "run")["normalisation"]
    assert all(type(v) is float for v in stored["mean"] + stored["std"])
    assert stored["mean"] == pytest.approx([float(v) for v in trainer.dataset.mean])


def misbehaving_forward(mistake: str):
    """A loss plugin's mistakes, as NTXent.forward: a per-sample loss, a Python float, a detached loss,
    diagnostics read back with .item() or not single values."""

    def forward(self, z1, z2):
        per_sample = (z1 - z2).pow(2).sum(dim=1)
        if mistake == "float":
            return 1.0
        if mistake == "detached":
            return per_sample.mean().detach()
        self.diagnostics = {"pos_sim": per_sample.mean().item()} if mistake == "item" else {}
        self.diagnostics |= {"gap": per_sample} if mistake == "vector_diagnostic" else {}
        self.diagnostics |= {"one": per_sample.mean().reshape(1)}  # a single value in a [1] tensor is fine
        return per_sample if mistake == "per_sample" else per_sample.mean()

    return forward


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("per_sample", r"returned a tensor of shape \[32\]; a loss returns a scalar \(0-dim\) torch.Tensor"),
        ("float", "returned float; a loss returns a scalar"),
        ("detached", "returned a tensor without a gradient; the loss must be a float tensor computed from z1 and z2"),
        ("item", r"has diagnostics\['pos_sim'\] = float; each diagnostic is a single-value tensor \(such as a 0-dim "),
        ("vector_diagnostic", r"has diagnostics\['gap'\] = a tensor of shape \[32\]"),
    ],
)
def test_a_loss_that_breaks_the_contract_is_named_before_anything_is_written(tmp_path, monkeypatch, mistake, message):
    from simclr.plugins.losses.nt_xent import NTXent

    monkeypatch.setattr(NTXent, "forward", misbehaving_forward(mistake))
    with pytest.raises(PluginError, match=rf"loss 'nt_xent' from plugin 'losses' \(distribution simclr .*{message}"):
        Trainer(tiny(), tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_a_loss_that_keeps_the_contract_trains(tmp_path, monkeypatch):
    from simclr.plugins.losses.nt_xent import NTXent

    monkeypatch.setattr(NTXent, "forward", misbehaving_forward("none"))
    assert math.isfinite(Trainer(tiny(["train.epochs=1"]), tmp_path / "run", show_progress=False).fit()["loss"])


def test_the_trial_call_of_the_loss_leaves_the_rng_as_it_was(tmp_path):
    """nt_logistic with sampling draws negatives from torch's RNG: the trial call must not shift a run's draws."""
    trainer = Trainer(tiny(["loss={name: nt_logistic, balance: sample}"]), tmp_path / "run", show_progress=False)
    z1, z2 = torch.randn(2, 32, 16)
    before = torch.get_rng_state()
    trainer._try_loss()
    assert torch.equal(torch.get_rng_state(), before)
    trainer.loss_fn(z1, z2)
    assert not torch.equal(torch.get_rng_state(), before)  # the loss does draw


def test_loss_params_that_do_not_fit_the_batch_are_refused_before_anything_is_written(tmp_path):
    too_many = "loss={name: nt_logistic, balance: sample, negatives_per_positive: 100}"  # 62 negatives per row
    with pytest.raises(UserError, match="negatives_per_positive"):
        Trainer(tiny([too_many]), tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()


class SignalOnCall(torch.nn.Module):
    """A loss that sends this process SIGINT during its ``call``-th call: in the middle of a step, not at a log."""

    def __init__(self, inner, call):
        super().__init__()
        self.inner, self.call, self.calls = inner, call, 0

    def forward(self, z1, z2):
        self.calls += 1
        if self.calls == self.call:
            os.kill(os.getpid(), signal.SIGINT)
        return self.inner(z1, z2)


def test_an_epoch_interrupted_between_metric_reads_records_every_step_and_both_parts_time(tmp_path):
    overrides = ["train.log_every=10"]  # read at each epoch's end only: steps 4 and 5 are unread at the signal
    Trainer(tiny(overrides), tmp_path / "straight", show_progress=False).fit()
    interrupted = Trainer(tiny(overrides), tmp_path / "resumed", show_progress=False)
    interrupted.loss_fn = SignalOnCall(interrupted.loss_fn, call=5)
    with pytest.raises(Interrupted, match="SIGINT"):
        interrupted.fit()
    state = load_checkpoint(tmp_path / "resumed")
    assert (state["epoch"], state["step_in_epoch"], state["epoch_progress"]["steps"]) == (1, 2, 2)
    Trainer(tiny(overrides), tmp_path / "resumed", resume=True, show_progress=False).fit()
    assert_same_epoch_losses(tmp_path / "straight", tmp_path / "resumed")
    last = json.loads((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["type"] == "epoch" and last["seconds"] > state["epoch_progress"]["seconds"] > 0


def test_training_json_counts_the_time_and_images_of_every_part_of_an_interrupted_run(tmp_path):
    """training.json (what `simclr report` reads, whatever the callbacks) sums the epochs' time over resumes and
    agrees with the epoch records of metrics.jsonl; 3 steps of 32 images per epoch."""
    run = tmp_path / "run"
    interrupted = Trainer(tiny(["train.log_every=10"]), run, show_progress=False)
    interrupted.loss_fn = SignalOnCall(interrupted.loss_fn, call=5)
    with pytest.raises(Interrupted):
        interrupted.fit()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    [first_epoch] = [r for r in records if r["type"] == "epoch"]
    partial = load_checkpoint(run)["epoch_progress"]["seconds"]
    at_signal = json.loads((run / "training.json").read_text())
    assert at_signal == {
        "epochs": 1,
        "step_in_epoch": 2,
        "global_step": 5,
        "train_seconds": pytest.approx(first_epoch["seconds"] + partial),
        "images": 5 * 32,
    }
    Trainer(tiny(), run, resume=True, show_progress=False).fit()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    finished = json.loads((run / "training.json").read_text())
    assert finished["train_seconds"] == pytest.approx(sum(r["seconds"] for r in epochs))
    position = (finished["epochs"], finished["step_in_epoch"], finished["global_step"])
    assert position == (2, 0, 6) and finished["images"] == 6 * 32

    state = load_checkpoint(run)  # a checkpoint from before the count: the time is unknown, not undercounted
    del state["trained"]
    save_checkpoint(state, run / "checkpoints" / "last.pt")
    Trainer(tiny(["train.epochs=3"]), run, resume=True, show_progress=False).fit()
    longer = json.loads((run / "training.json").read_text())
    assert (longer["epochs"], longer["train_seconds"], longer["images"]) == (3, None, None)


@pytest.mark.parametrize("recorded", [True, False])
def test_a_run_resumed_on_another_kind_of_device_continues_with_a_reseeded_view_stream(tmp_path, caplog, recorded):
    """A CUDA generator's state (16 bytes) cannot be set on a CPU generator, nor the other way round."""
    Trainer(tiny(["train.epochs=1"]), tmp_path / "a", show_progress=False).fit()
    state = load_checkpoint(tmp_path / "a")
    cuda_state = {"generator": torch.arange(16, dtype=torch.uint8)} | ({"device": "cuda"} if recorded else {})
    state["rng"]["streams"] = [cuda_state]
    save_checkpoint(state, tmp_path / "a" / "checkpoints" / "last.pt")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    resumed = []
    for run in ("a", "b"):
        with caplog.at_level("WARNING", logger="simclr"):
            trainer = Trainer(tiny(), tmp_path / run, resume=True, show_progress=False)
        trainer.fit()
        resumed.append(weights(trainer.model))
    assert "the views continue from a new stream" in caplog.text
    for key, value in resumed[0].items():  # reseeded deterministically
        assert torch.equal(value, resumed[1][key]), key


def test_a_signal_on_an_epochs_last_step_finishes_that_epoch_first(tmp_path):
    trainer = Trainer(tiny(), tmp_path / "run", show_progress=False)
    plugin_system().register_object(SignalAtStep(3), "signal-at-3")
    try:
        with pytest.raises(Interrupted):
            trainer.fit()
    finally:
        plugin_system().manager.unregister(name="signal-at-3")
    state = load_checkpoint(tmp_path / "run")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 0, 3)
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["type"] == "epoch"] == [0]


def test_sigterm_saves_and_stops(tmp_path):
    trainer = Trainer(tiny(), tmp_path / "run", show_progress=False)
    plugin_system().register_object(SignalAtStep(2, signal.SIGTERM), "sigterm")
    try:
        with pytest.raises(Interrupted, match="SIGTERM") as info:
            trainer.fit()
    finally:
        plugin_system().manager.unregister(name="sigterm")
    assert info.value.exit_code == 130
    assert load_checkpoint(tmp_path / "run")["global_step"] == 2


def test_a_sigterm_after_ctrl_c_keeps_ctrl_c_as_what_stopped_the_run(tmp_path):
    """A parallel sweep passes a stop on as SIGTERM, also to a run Ctrl-C already reached: the run still says
    SIGINT stopped it, and saves as for one signal."""
    trainer = Trainer(tiny(), tmp_path / "run", show_progress=False)
    # pluggy calls the last registered first: SIGINT, then SIGTERM
    plugin_system().register_object(SignalAtStep(2, signal.SIGTERM), "sigterm")
    plugin_system().register_object(SignalAtStep(2, signal.SIGINT), "sigint")
    try:
        with pytest.raises(Interrupted, match="stopped by SIGINT"):
            trainer.fit()
    finally:
        plugin_system().manager.unregister(name="sigint")
        plugin_system().manager.unregister(name="sigterm")
    assert load_checkpoint(tmp_path / "run")["global_step"] == 2


class NaNAfter(torch.nn.Module):
    def __init__(self, inner, good_calls):
        super().__init__()
        self.inner, self.good_calls, self.calls = inner, good_calls, 0

    def forward(self, z1, z2):
        self.calls += 1
        loss = self.inner(z1, z2)
        return loss if self.calls <= self.good_calls else loss * float("nan")


def test_non_finite_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny(["train.log_every=10"]), tmp_path / "run", show_progress=False)
    trainer.loss_fn = NaNAfter(trainer.loss_fn, good_calls=4)
    with pytest.raises(TrainingError, match=r"at step 5 \(epoch 2 of 2\); last finite loss: \d.* kept in"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "run")["global_step"] == 3


def test_non_finite_loss_before_the_first_checkpoint_says_there_is_none(tmp_path):
    trainer = Trainer(tiny(), tmp_path / "run", show_progress=False)
    trainer.loss_fn = NaNAfter(trainer.loss_fn, good_calls=1)
    with pytest.raises(TrainingError, match=r"at step 2 \(epoch 1 of 2\).* No checkpoint was written yet"):
        trainer.fit()
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"value": torch.ones(3)}, path)

    def crash(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"value": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["value"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_or_foreign_checkpoints_are_clear_errors(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"value": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="truncated or not a checkpoint"):
        load_checkpoint(path)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a simclr checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    for text in ("# a README\n", "{}", ""):
        (tmp_path / "text.pt").write_text(text)
        with pytest.raises(UserError, match=r"not a checkpoint file \(not written by torch.save\)"):
            load_checkpoint(tmp_path / "text.pt")


def test_step_never_reads_back_from_the_device(tmp_path, monkeypatch):
    trainer = Trainer(tiny(), tmp_path / "run", show_progress=False)
    views = next(iter(trainer.stream.epoch(0)))

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync inside the training step")

    monkeypatch.setattr(torch.Tensor, "item", forbidden)
    monkeypatch.setattr(torch.Tensor, "tolist", forbidden)
    monkeypatch.setattr(torch.Tensor, "__bool__", forbidden)
    loss = trainer._step(*views)
    diagnostics = dict(trainer.loss_fn.diagnostics)
    monkeypatch.undo()
    assert torch.isfinite(loss) and diagnostics


def write_config(tmp_path, data) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_bad_config_exits_2_and_writes_nothing(tmp_path):
    bad = {**TINY, "loss": {"name": "nt_xent", "temperature": -1}}
    result = run_simclr("train", write_config(tmp_path, bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "loss.temperature" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_evaluation_after_training_on_an_unlabelled_dataset_is_refused_before_training(tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(40):
        Image.new("RGB", (20, 20), (6 * i, 0, 0)).save(images / f"{i}.png")
    dataset = f"data.dataset={{name: image_folder, train: {images}, image_size: 16}}"
    with pytest.raises(UserError, match="eval.after_train is true but dataset 'image_folder' has no labelled"):
        Trainer(tiny([dataset, "eval.after_train=true"]), tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="train.knn_monitor_every is 1 but dataset 'image_folder' has no labelled"):
        Trainer(tiny([dataset, "train.knn_monitor_every=1"]), tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()
    Trainer(tiny([dataset, "eval.after_train=false"]), tmp_path / "run", show_progress=False)


def test_a_folder_that_is_not_a_run_is_never_written_into_even_with_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    result = run_simclr("train", write_config(tmp_path, TINY), "--out", str(out), "--overwrite")
    assert result.returncode == 2 and "is not a run directory" in result.stderr
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


@pytest.mark.parametrize("lookalike", ["checkpoints", "other tool's config", "experiment as config.yaml"])
def test_a_folder_that_only_looks_like_a_run_is_not_deleted_by_overwrite(tmp_path, lookalike):
    out = tmp_path / "proj"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    if lookalike == "checkpoints":
        (out / "checkpoints").mkdir()
    elif lookalike == "other tool's config":
        (out / "config.yaml").write_text("trainer: {max_epochs: 3}\nmodel: {lr: 0.1}\n")
    else:  # `simclr train proj/config.yaml --out proj`
        (out / "config.yaml").write_text(yaml.safe_dump(TINY))
    with pytest.raises(UserError, match="is not a run directory"):
        Trainer(tiny(), out, overwrite=True, show_progress=False)
    assert (out / "thesis.tex").read_text() == "precious"


def test_a_run_killed_before_writing_its_config_can_be_overwritten(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=1"]), run, show_progress=False).fit()
    assert (run / ".simclr-run").is_file()
    (run / "config.yaml").unlink()
    (run / "checkpoints" / "last.pt").unlink()
    Trainer(tiny(["train.epochs=1"]), run, overwrite=True, show_progress=False).fit()
    assert load_checkpoint(run)["epoch"] == 1


def test_a_folder_with_nothing_but_empty_run_folders_is_used_without_overwrite(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)  # left by a run killed before it wrote anything else
    (run / "plots").mkdir()
    Trainer(tiny(["train.epochs=1"]), run, show_progress=False).fit()
    assert load_checkpoint(run)["epoch"] == 1


def test_a_run_made_before_the_marker_existed_is_still_a_run_directory(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=1"]), run, show_progress=False).fit()
    (run / ".simclr-run").unlink()
    with pytest.raises(UserError, match="already holds a run"):
        Trainer(tiny(["train.epochs=1"]), run, show_progress=False)
    Trainer(tiny(["train.epochs=1", "train.seed=5"]), run, overwrite=True, show_progress=False).fit()
    assert load_checkpoint(run)["config"]["train"]["seed"] == 5


def test_an_existing_run_is_resumed_or_overwritten_only_when_asked(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=1"]), run, show_progress=False).fit()
    with pytest.raises(UserError, match=f"already holds a run; pass --resume {run}"):
        Trainer(tiny(), run, show_progress=False)
    replaced = Trainer(tiny(["train.epochs=1", "train.seed=9"]), run, overwrite=True, show_progress=False)
    replaced.fit()
    assert load_checkpoint(run)["config"]["train"]["seed"] == 9


def test_a_run_that_stopped_before_its_first_checkpoint_can_be_started_again(tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(tiny(), run, show_progress=False)
    trainer.loss_fn = NaNAfter(trainer.loss_fn, good_calls=0)
    with pytest.raises(TrainingError):
        trainer.fit()
    assert (run / "config.yaml").is_file() and not (run / "checkpoints" / "last.pt").exists()
    with pytest.raises(UserError, match="stopped before its first checkpoint, so it cannot be resumed; pass --overw"):
        Trainer(tiny(), run, show_progress=False)
    with pytest.raises(UserError, match=f"start it again with `simclr train {run / 'config.yaml'} --out {run} --ov"):
        Trainer(tiny(), run, resume=True, show_progress=False)
    Trainer(tiny(["train.epochs=1"]), run, overwrite=True, show_progress=False).fit()
    assert load_checkpoint(run)["epoch"] == 1


def test_a_resume_trains_longer_never_shorter_and_keeps_the_architecture(tmp_path, caplog):
    run = tmp_path / "run"
    Trainer(tiny(), run, show_progress=False).fit()
    config_before = (run / "config.yaml").read_text()
    with pytest.raises(UserError, match=r"has trained 2 epochs, more than train.epochs=1.*N >= 2"):
        Trainer(tiny(["train.epochs=1"]), run, resume=True, show_progress=False)
    with pytest.raises(UserError, match=r"do not fit the model.*other shape, e.g. .*keeps its architecture"):
        Trainer(tiny(["model.projection.out_dim=8"]), run, resume=True, show_progress=False)
    # the same shapes (a ResNet pools any size), but not the network that was trained
    with pytest.raises(UserError, match=r"trained on 16 px images, now given 24 px.*keeps its architecture"):
        Trainer(tiny(["data.dataset.image_size=24", "train.epochs=3"]), run, resume=True, show_progress=False)
    with pytest.raises(UserError, match=r"trained with data.batch_size 32; a resumed run keeps it"):
        Trainer(tiny(["data.batch_size=16", "train.epochs=3"]), run, resume=True, show_progress=False)
    assert (run / "config.yaml").read_text() == config_before
    files_before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with caplog.at_level("WARNING", logger="simclr"):  # nothing to do, so nothing written, --set values included
        assert Trainer(tiny(["loss.temperature=0.1"]), run, resume=True, show_progress=False).fit() == {}
    assert "already trained all 2 epochs; nothing to do" in caplog.text
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files_before
    # trained on to 4 epochs (12 steps, 3 of warm-up), the cosine continues on the longer run's curve
    Trainer(tiny(["train.epochs=4"]), run, resume=True, show_progress=False).fit()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lr = {r["step"]: r["lr"] for r in records if r["type"] == "step"}
    assert lr[6] == pytest.approx(0.001 * 0.5 * (1 + math.cos(math.pi * 2 / 3)))  # the 2-epoch run's last step
    assert lr[7] == pytest.approx(0.001 * 0.5 * (1 + math.cos(math.pi * 3 / 9)))  # step 6 (0-based) of 12


def test_a_run_being_trained_cannot_be_resumed_or_overwritten_by_another_process(tmp_path):
    """The run directory's lock (an flock, as another process training it holds): a second trainer refuses, with
    nothing written, until the first lets go."""
    import socket

    from simclr.rundir import lock_run_dir

    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=1"]), run, show_progress=False).fit()
    files_before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    held = lock_run_dir(run)
    holder = f"process {os.getpid()} on {socket.gethostname()}"
    with pytest.raises(UserError, match=f"is being trained by {holder} right now; wait for it"):
        Trainer(tiny(), run, resume=True, show_progress=False).fit()
    with pytest.raises(UserError, match=f"is being trained by {holder} right now; --overwrite would delete it"):
        Trainer(tiny(), run, overwrite=True, show_progress=False)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files_before
    held.close()
    # a trainer ready to overwrite, and another process that starts training the run before it does
    overwriting = Trainer(tiny(), run, overwrite=True, show_progress=False)
    held = lock_run_dir(run)
    with pytest.raises(UserError, match="is being trained by"):
        overwriting.fit()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".simclr-lock"} == {
        p: data for p, data in files_before.items() if p.name != ".simclr-lock"
    }
    held.close()
    Trainer(tiny(), run, resume=True, show_progress=False).fit()
    assert load_checkpoint(run)["epoch"] == 2
    lock_run_dir(run).close()  # let go by the trainer that finished


def test_a_trainer_that_fails_as_it_starts_lets_go_of_the_run(tmp_path):
    from simclr.rundir import lock_run_dir

    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=1"]), run, show_progress=False).fit()
    (run / "config.yaml").unlink()
    (run / "config.yaml").mkdir()  # its rewrite at the start fails
    failing = Trainer(tiny(), run, resume=True, show_progress=False)
    with pytest.raises(IsADirectoryError):
        failing.fit()
    assert failing.lock is None
    lock_run_dir(run).close()  # free while the failed trainer is still referenced


def test_overwrite_keeps_the_lock_it_holds_and_replaces_the_rest(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=2"]), run, show_progress=False).fit()
    (run / "leftover.txt").write_text("from the old run")
    Trainer(tiny(["train.epochs=1"]), run, overwrite=True, show_progress=False).fit()
    assert not (run / "leftover.txt").exists() and load_checkpoint(run)["epoch"] == 1
    assert (run / ".simclr-lock").read_text().startswith(f"process {os.getpid()} on ")


def test_ranks_leave_together_unless_a_rank_failed(tmp_path, monkeypatch):
    """After training, a shared stop or a resume with nothing to do every rank reaches the exit and they leave the
    process group together; after a failure on one rank the others may never come, so no rank waits."""
    import simclr.trainer as trainer_module

    left = []
    monkeypatch.setattr(trainer_module, "shutdown", lambda runtime, together=False: left.append(together))
    Trainer(tiny(["train.epochs=1"]), tmp_path / "done", show_progress=False).fit()
    Trainer(tiny(["train.epochs=1"]), tmp_path / "done", resume=True, show_progress=False).fit()  # nothing to do
    stopped = Trainer(tiny(), tmp_path / "stopped", show_progress=False)
    stopped.loss_fn = SignalOnCall(stopped.loss_fn, call=2)
    with pytest.raises(Interrupted):
        stopped.fit()
    failing = Trainer(tiny(), tmp_path / "failing", show_progress=False)
    failing.loss_fn = lambda z1, z2: torch.tensor(float("nan"), requires_grad=True)
    with pytest.raises(TrainingError):
        failing.fit()
    assert left == [True, True, True, False]


def test_out_or_resume_pointing_at_a_file_is_a_clear_error(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    result = run_simclr("train", write_config(tmp_path, TINY), "--out", str(a_file))
    assert result.returncode == 2 and "not a directory" in result.stderr and "Traceback" not in result.stderr
    result = run_simclr("train", "--resume", str(a_file))
    assert result.returncode == 2 and "not a run directory" in result.stderr and "Traceback" not in result.stderr
    assert a_file.read_text() == "not a folder"


@pytest.mark.slow
def test_sigint_in_a_subprocess_saves_exits_130_and_resumes(tmp_path):
    slow = {**TINY, "train": {**TINY["train"], "epochs": 50}}
    out = tmp_path / "run"
    command = [sys.executable, "-m", "simclr", "train", write_config(tmp_path, slow), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 4):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "simclr train --resume" in stderr and "Traceback" not in stderr
    state = load_checkpoint(out)
    assert state["global_step"] >= 3
    # 3 epochs, or (on a busy machine, where the signal lands later) the first epoch after the interrupted one
    epochs = max(3, state["epoch"] + (2 if state["step_in_epoch"] else 1))
    resumed = run_simclr("train", "--resume", str(out), "--set", f"train.epochs={epochs}", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out)["global_step"] == 3 * epochs
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == epochs  # the override is kept


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_with_finite_float32_loss(tmp_path, precision):
    trainer = Trainer(tiny([f"train.precision={precision}", "train.epochs=1"]), tmp_path / "run", show_progress=False)
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    first_conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    dtypes = []
    first_conv.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    record = trainer.fit()
    assert math.isfinite(record["loss"])
    assert set(dtypes) == {torch.bfloat16 if precision == "bf16" else torch.float16}  # autocast is really on
    views = next(iter(trainer.stream.epoch(1)))
    assert trainer._step(*views).dtype == torch.float32


@pytest.mark.parametrize(("scaling", "factor"), [("none", 1.0), ("linear", 32 / 256), ("sqrt", 32**0.5)])
def test_lr_scaling_sets_the_peak_lr_from_the_global_batch(tmp_path, scaling, factor):
    """TINY's global batch is 32 and its base lr 0.001; with no warm-up and a flat schedule the lr is the peak."""
    overrides = [f"schedule.lr_scaling={scaling}", "schedule.warmup_epochs=0", "schedule.decay=constant"]
    trainer = Trainer(tiny(overrides), tmp_path / "run", show_progress=False)
    assert trainer.schedule.set_step(0) == pytest.approx(0.001 * factor)
    assert [group["lr"] for group in trainer.optimizer.param_groups] == pytest.approx(
        [0.001 * factor] * len(trainer.optimizer.param_groups)
    )


def test_checkpoint_every_keeps_numbered_checkpoints_beside_last(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=4", "train.checkpoint_every=2"]), run, show_progress=False).fit()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-0002.pt", "epoch-0004.pt", "last.pt"]
    assert load_checkpoint(run / "checkpoints" / "epoch-0002.pt")["epoch"] == 2
    assert load_checkpoint(run)["epoch"] == 4


def test_compile_is_opt_in(tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or model)
    Trainer(tiny(), tmp_path / "a", show_progress=False)
    assert compiled == []
    trainer = Trainer(tiny(["train.compile=true"]), tmp_path / "b", show_progress=False)
    assert compiled == [trainer.model]


#: small_resnet has 64 features; a block is Linear(bias=False) + BatchNorm (weight, bias); the last Linear has a bias
HIDDEN_BLOCK = 64 * 64 + 2 * 64


@pytest.mark.parametrize(
    ("layers", "out_dim", "head_params"),
    [(0, 64, 0), (1, 16, 64 * 16 + 16), (2, 16, HIDDEN_BLOCK + 64 * 16 + 16), (3, 16, 2 * HIDDEN_BLOCK + 64 * 16 + 16)],
)
def test_projection_heads_of_the_papers_study_and_deeper_ones_train(tmp_path, layers, out_dim, head_params):
    """0, 1, 2 layers: the paper's projection-head study; 3: SimCLRv2's deeper head."""
    experiment = tiny([f"model.projection.layers={layers}", "train.epochs=1"])
    trainer = Trainer(experiment, tmp_path / "run", show_progress=False)
    assert sum(p.numel() for p in trainer.model.head.parameters()) == head_params
    batchnorms = [m for m in trainer.model.head.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(batchnorms) == max(layers - 1, 0)
    assert trainer.model(torch.randn(2, 3, 16, 16)).shape == (2, out_dim)  # 0 layers: the loss sees the features
    assert math.isfinite(trainer.fit()["loss"])


def test_the_default_heads_parameter_names_are_those_of_earlier_checkpoints():
    from simclr.model import projection_head

    names = set(projection_head(64, 32, 16, layers=2).state_dict())
    assert names == {"0.weight", "3.weight", "3.bias"} | {f"1.{n}" for n in torch.nn.BatchNorm1d(1).state_dict()}
    assert set(projection_head(64, 32, 16, layers=1).state_dict()) == {"0.weight", "0.bias"}


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_resumed_optimizer_state_takes_its_parameters_memory_layout(optimizer):
    """A checkpoint of a run without channels_last, resumed with it (as on a GPU, where it is the default): the
    moments take the parameters' layout (fused CUDA kernels refuse mismatched ones) and keep their values, so the
    next step is the one the saved optimizer would take."""
    from simclr.trainer import match_parameter_layout

    make = {
        "adam": lambda params, fused: torch.optim.Adam(params, lr=0.1, fused=fused),
        "sgd": lambda params, fused: torch.optim.SGD(params, lr=0.1, momentum=0.9, fused=fused),
    }[optimizer]
    torch.manual_seed(0)
    start, grads = torch.randn(8, 3, 3, 3), [torch.randn(8, 3, 3, 3) for _ in range(2)]
    reference = start.clone().requires_grad_()
    saved = make([reference], False)
    reference.grad = grads[0].clone()
    saved.step()
    resumed_param = reference.detach().clone().contiguous(memory_format=torch.channels_last).requires_grad_()
    resumed = make([resumed_param], True)
    resumed.load_state_dict(copy.deepcopy(saved.state_dict()))  # as from a checkpoint file: no shared tensors
    match_parameter_layout(resumed)
    for state in resumed.state[resumed_param].values():
        if torch.is_tensor(state) and state.dim() == 4:
            assert state.stride() == resumed_param.stride()
    reference.grad = grads[1].clone()
    saved.step()
    resumed_param.grad = grads[1].clone().contiguous(memory_format=torch.channels_last)
    resumed.step()
    assert torch.allclose(resumed_param, reference, atol=1e-6)


def test_a_resumed_optimizer_keeps_the_configs_options_and_this_devices_kernel_choice(tmp_path):
    """The checkpoint gives the moments; the config and this device give the options. A checkpoint from where
    no fused kernel was chosen, resumed under fp16: GradScaler hands the grad scale to the optimizer built now,
    which must then be the fused one it asked (before, the saved options came back and the step failed)."""
    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=1"]), run, show_progress=False).fit()
    state = load_checkpoint(run)
    for group in state["optimizer"]["param_groups"]:
        group["fused"], group["foreach"] = None, True
    save_checkpoint(state, run / "checkpoints" / "last.pt")
    resumed = Trainer(
        tiny(["train.precision=fp16", "optimizer.weight_decay=0.5"]), run, resume=True, show_progress=False
    )
    [group] = resumed.optimizer.param_groups
    assert (group["fused"], group["foreach"], group["weight_decay"]) == (True, None, 0.5)
    steps_before = {p: s["step"].item() for p, s in resumed.optimizer.state.items()}
    assert set(steps_before.values()) == {3.0}  # the saved moments and step counts came back
    resumed.fit()
    assert {s["step"].item() for s in resumed.optimizer.state.values()} == {6.0}


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "optimizer={name: sgd, lr: 0.1, momentum: 0.9}",
            "trained with optimizer 'adam'.*may not change optimizer.name",
        ),
        ("optimizer.exclude_bias_and_norm=true", "does not fit the optimizer.*params that decide the groups"),
    ],
)
def test_a_resume_that_changes_the_optimizer_is_refused_with_nothing_written(tmp_path, override, message):
    run = tmp_path / "run"
    Trainer(tiny(["train.epochs=1"]), run, show_progress=False).fit()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match=message):
        Trainer(tiny([override]), run, resume=True, show_progress=False)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_run_resumed_with_channels_last_has_optimizer_state_in_that_layout(tmp_path):
    Trainer(tiny(["train.epochs=1", "train.channels_last=false"]), tmp_path / "run", show_progress=False).fit()
    resumed = Trainer(tiny(["train.channels_last=true"]), tmp_path / "run", resume=True, show_progress=False)
    convs = [p for p in resumed.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    for param in convs:
        for value in resumed.optimizer.state[param].values():
            if torch.is_tensor(value) and value.dim() == 4:
                assert value.stride() == param.stride()
    resumed.fit()


@pytest.mark.parametrize("system", ["no flock (Windows)", "a file system that refuses locks"])
def test_without_a_lock_a_run_still_trains_resumes_and_is_overwritten(tmp_path, monkeypatch, caplog, system):
    import errno
    import fcntl
    import sys

    if system.startswith("no flock"):
        monkeypatch.setitem(sys.modules, "fcntl", None)
    else:

        def refuse(handle, operation):
            raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(fcntl, "flock", refuse)
    run = tmp_path / "run"
    with caplog.at_level("WARNING", logger="simclr"):
        Trainer(tiny(["train.epochs=1"]), run, show_progress=False).fit()
        Trainer(tiny(), run, resume=True, show_progress=False).fit()
        Trainer(tiny(["train.epochs=1"]), run, overwrite=True, show_progress=False).fit()
    assert load_checkpoint(run)["epoch"] == 1
    refused = "its file system refuses locks ([Errno 37] No locks available)" in caplog.text
    assert refused == (not system.startswith("no flock"))


def test_a_loss_with_trainable_parameters_is_warned_about(tmp_path, monkeypatch, caplog):
    """The optimizer is given the model's parameters: a loss's own (a learnable temperature) would silently stay
    as initialised."""
    losses = plugin_system().registry.components["loss"]
    nt_xent = losses["nt_xent"]

    class LearnableTemperature(torch.nn.Module):
        def __init__(self, params):
            super().__init__()
            self.inner = nt_xent.factory(params)
            self.log_t = torch.nn.Parameter(torch.zeros(()))
            self.register_buffer("scale", torch.ones(()))  # a buffer is no trainable parameter

        def forward(self, z1, z2):
            return self.inner(z1, z2) * self.log_t.exp() * self.scale

    monkeypatch.setitem(losses, "nt_xent", dataclasses.replace(nt_xent, factory=LearnableTemperature))
    with caplog.at_level("WARNING", logger="simclr"):
        Trainer(tiny(), tmp_path / "run", show_progress=False)
    assert "loss 'nt_xent' has trainable parameters (log_t), which nothing trains" in caplog.text
    caplog.clear()
    monkeypatch.setitem(losses, "nt_xent", nt_xent)
    with caplog.at_level("WARNING", logger="simclr"):
        Trainer(tiny(), tmp_path / "run", show_progress=False)
    assert "trainable parameters" not in caplog.text


def test_a_resume_keeps_the_runs_normalisation_when_its_image_folder_changed(tmp_path, caplog):
    """The network was trained on inputs normalised with the folder's statistics of then: a resume after images
    were added must not renormalise with today's (it did, and the checkpoint then claimed the new ones)."""
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(40):
        Image.new("RGB", (20, 20), (6 * i, 0, 0)).save(images / f"{i}.png")
    dataset = f"data.dataset={{name: image_folder, train: {images}, image_size: 16}}"
    run = tmp_path / "run"
    Trainer(tiny([dataset, "train.epochs=1", "train.max_steps_per_epoch=1"]), run, show_progress=False).fit()
    saved = load_checkpoint(run)["normalisation"]
    for i in range(24):
        Image.new("RGB", (20, 20), (255, 255, 255)).save(images / f"white-{i}.png")
    now = simclr.create("dataset", "image_folder", train=str(images), image_size=16)
    assert now.mean[1] > saved["mean"][1] + 0.1  # the folder's statistics did change
    resumed = tiny([dataset, "train.epochs=2", "train.max_steps_per_epoch=1"])
    with caplog.at_level("WARNING", logger="simclr"):
        trainer = Trainer(resumed, run, resume=True, show_progress=False)
    assert "the pre-training set has 64 images now and had 40 when" in caplog.text
    assert list(trainer.stream.settings.mean) == saved["mean"] and list(trainer.stream.settings.std) == saved["std"]
    trainer.fit()
    assert load_checkpoint(run)["normalisation"] == saved and load_checkpoint(run)["pretrain_images"] == 64


def test_an_optimizer_that_leaves_out_parameters_is_warned_about(tmp_path, monkeypatch, caplog):
    optimizers = plugin_system().registry.components["optimizer"]
    adam = optimizers["adam"]

    def backbone_only(params, model):
        return torch.optim.Adam(model.backbone.parameters(), lr=params.lr)

    monkeypatch.setitem(optimizers, "adam", dataclasses.replace(adam, factory=backbone_only))
    with caplog.at_level("WARNING", logger="simclr"):
        trainer = Trainer(tiny(), tmp_path / "run", show_progress=False)
    head = [key for key, _ in trainer.model.named_parameters() if key.startswith("head.")]
    assert f"and leaves out {len(head)} (e.g. {', '.join(head[:3])}): those are never trained" in caplog.text
    caplog.clear()
    monkeypatch.setitem(optimizers, "adam", adam)
    with caplog.at_level("WARNING", logger="simclr"):
        Trainer(tiny(), tmp_path / "run", show_progress=False)
    assert "never trained" not in caplog.text
