"""Built-in callbacks: metrics.jsonl lines and rate-limited plots."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import simclr


def test_metrics_jsonl_appends_one_object_per_record(tmp_path):
    callback = simclr.create("callback", "metrics_jsonl")
    run = SimpleNamespace(dir=tmp_path)
    callback.simclr_on_log(run=run, record={"type": "step", "step": 1, "loss": 2.5})
    callback.simclr_on_epoch_end(run=run, epoch=0, record={"type": "epoch", "step": 1, "loss": 2.0})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["step", "epoch"]


def test_plots_redraw_at_checkpoints_at_most_every_min_seconds_and_always_at_the_end(tmp_path):
    records = [{"type": "step", "step": s, "loss": 1.0 / s, "lr": 0.1} for s in range(1, 5)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run = SimpleNamespace(dir=tmp_path)
    lazy = simclr.create("callback", "plots", min_seconds=3600)
    lazy.simclr_on_checkpoint_saved(run=run, path=None)
    assert not (tmp_path / "plots").exists()
    lazy.simclr_on_train_end(run=run, record={})
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["loss.png", "lr.png"]
    (tmp_path / "plots" / "loss.png").unlink()
    eager = simclr.create("callback", "plots", min_seconds=0)
    eager.simclr_on_checkpoint_saved(run=run, path=None)
    assert (tmp_path / "plots" / "loss.png").is_file()


def test_plots_leave_out_non_finite_values(tmp_path):
    records = [
        {"type": "step", "step": s, "loss": [1.0, float("inf"), 0.5][s - 1], "knn_top1": float("nan")}
        for s in (1, 2, 3)
    ]
    from simclr.plugins.callbacks.plots import plot_metrics

    written = plot_metrics(records, tmp_path / "plots")
    assert [p.name for p in written] == ["loss.png"]  # knn_top1 has no finite value: no plot
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 0


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    callback = simclr.create("callback", "tensorboard")
    run = SimpleNamespace(dir=tmp_path)
    callback.simclr_on_train_start(run=run)
    for step in (1, 2, 3):
        callback.simclr_on_log(run=run, record={"type": "step", "epoch": 0, "step": step, "loss": 1.0 / step})
    epoch_record = {"type": "epoch", "epoch": 0, "step": 3, "loss": 0.6, "knn_top1": 42.0}
    callback.simclr_on_epoch_end(run=run, epoch=0, record=epoch_record)
    callback.simclr_on_train_end(run=run, record={})
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("step/loss")] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    assert [(e.step, e.value) for e in events.Scalars("epoch/knn_top1")] == [(3, 42.0)]  # the monitor's
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("epoch/loss")] == [(3, 0.6)]


def test_a_failing_callback_is_named_as_configured_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    from test_trainer import tiny

    from simclr.trainer import Trainer

    @simclr.hookimpl
    def broken(self, run, record):
        raise ValueError("Invalid affine transformation matrix")

    plots_class = type(simclr.create("callback", "plots"))
    monkeypatch.setattr(plots_class, "simclr_on_train_end", broken)
    with caplog.at_level("WARNING", logger="simclr"):
        Trainer(tiny(["train.epochs=1"]), tmp_path / "run", show_progress=False).fit()
    assert (
        "callback 'plots' from plugin 'callbacks' (distribution simclr 0.1.0) (from train.callbacks) raised in "
        "simclr_on_train_end and is ignored: "
        "ValueError: Invalid affine transformation matrix"
    ) in caplog.text
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
