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


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    callback = simclr.create("callback", "tensorboard")
    run = SimpleNamespace(dir=tmp_path)
    callback.simclr_on_train_start(run=run)
    for step in (1, 2, 3):
        callback.simclr_on_log(run=run, record={"type": "step", "epoch": 0, "step": step, "loss": 1.0 / step})
    callback.simclr_on_train_end(run=run, record={})
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("step/loss")] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
