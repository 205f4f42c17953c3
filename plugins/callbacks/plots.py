"""PNG curves of every metric in metrics.jsonl, redrawn at each checkpoint and at the end of training."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import simclr

SKIP = {"type", "epoch", "step", "seconds", "status"}
log = logging.getLogger("simclr")


class PlotsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics_file: str = Field("metrics.jsonl", description="the metrics file to plot, inside the run directory")
    min_seconds: float = Field(
        30.0, ge=0, description="redraw at a checkpoint only if this long has passed since the last drawing"
    )


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_metrics(records: list[dict], out_dir: Path) -> list[Path]:
    """One PNG per metric: step records as a thin line, epoch means as dots. Non-finite values are left out;
    a metric that cannot be drawn is logged and skipped, the others are still drawn."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    out_dir.mkdir(parents=True, exist_ok=True)
    names = sorted({k for r in records for k, v in r.items() if k not in SKIP and isinstance(v, int | float)})
    written = []
    for name in names:
        series = {
            kind: [(r["step"], r[name]) for r in records if r.get("type") == kind and _finite(r.get(name))]
            for kind in ("step", "epoch")
        }
        if not any(series.values()):
            continue
        fig = Figure(figsize=(6, 3.5))
        ax = fig.add_subplot()
        for kind, style in (("step", "-"), ("epoch", "o-")):
            if series[kind]:
                xs, ys = zip(*series[kind], strict=True)
                ax.plot(xs, ys, style, label=kind, linewidth=1, markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        try:
            fig.savefig(path, dpi=100)
        except ValueError as exc:
            log.warning("plots: could not draw %s: %s", name, exc)
            continue
        written.append(path)
    return written


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


class Plots:
    """Draws at checkpoints (at most every ``min_seconds``: drawing costs about a second) and at the end."""

    def __init__(self, params: PlotsParams):
        self.metrics_file = params.metrics_file
        self.min_seconds = params.min_seconds
        self.last_drawn = time.monotonic()

    def _draw(self, run: simclr.RunContext) -> None:
        plot_metrics(read_records(run.dir / self.metrics_file), run.dir / "plots")
        self.last_drawn = time.monotonic()

    @simclr.hookimpl
    def simclr_on_checkpoint_saved(self, run: simclr.RunContext, path: Path) -> None:
        if time.monotonic() - self.last_drawn >= self.min_seconds:
            self._draw(run)

    @simclr.hookimpl
    def simclr_on_train_end(self, run: simclr.RunContext, record: dict[str, Any]) -> None:
        self._draw(run)
