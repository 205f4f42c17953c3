"""Built-in callbacks: metrics.jsonl, PNG plots, TensorBoard.

metrics_jsonl and plots are default-on: they run unless a config lists its own ``train.callbacks``.
"""

from __future__ import annotations

import simclr
from simclr.plugins.callbacks.metrics_jsonl import MetricsJsonl, MetricsJsonlParams
from simclr.plugins.callbacks.plots import Plots, PlotsParams
from simclr.plugins.callbacks.tensorboard import TensorBoard, TensorBoardParams


@simclr.hookimpl
def simclr_register_callbacks(registry: simclr.Registrar) -> None:
    registry.add(
        "metrics_jsonl", MetricsJsonl, MetricsJsonlParams, "append every logged record to metrics.jsonl", default=True
    )
    registry.add(
        "plots", Plots, PlotsParams, "PNG curves of loss, lr and monitors in plots/ (needs metrics_jsonl)", default=True
    )
    registry.add("tensorboard", TensorBoard, TensorBoardParams, "TensorBoard event files (pip install tensorboard)")
