"""Built-in callbacks: metrics.jsonl lines and rate-limited plots."""

from __future__ import annotations

import json
from types import SimpleNamespace

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
