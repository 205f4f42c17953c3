"""The hooks a `simclr` plugin may implement.

A plugin is a module (or object) named by an entry point in the ``simclr`` group. Registration hooks receive a
:class:`simclr.Registrar` bound to one component kind; lifecycle hooks receive the running
:class:`simclr.RunContext`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import torch

    from simclr.registry import Registrar
    from simclr.runtime import Runtime
    from simclr.schema import Experiment

PROJECT = "simclr"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass
class RunContext:
    """What lifecycle hooks receive as ``run``: the run directory, the resolved experiment, the model (unwrapped)
    and optimizer, the device and precision, and the epochs completed and optimizer steps taken so far."""

    dir: Path
    experiment: Experiment
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    runtime: Runtime
    epoch: int = 0
    step: int = 0


@hookspec
def simclr_register_losses(registry: Registrar) -> None:
    """Add loss components: ``registry.add(name, factory, params_model, description)``."""


@hookspec
def simclr_register_miners(registry: Registrar) -> None:
    """Add negative-mining strategies used by triplet-style losses."""


@hookspec
def simclr_register_backbones(registry: Registrar) -> None:
    """Add backbone networks (images [B, 3, H, W] -> features [B, F], with ``feature_dim``)."""


@hookspec
def simclr_register_optimizers(registry: Registrar) -> None:
    """Add optimizers (factory(params, model) -> torch.optim.Optimizer)."""


@hookspec
def simclr_register_datasets(registry: Registrar) -> None:
    """Add datasets (factory(params) -> simclr.data.ImageDataset)."""


@hookspec
def simclr_register_callbacks(registry: Registrar) -> None:
    """Add callbacks a config can switch on (factory(params) -> object implementing lifecycle hooks)."""


@hookspec
def simclr_on_train_start(run: RunContext) -> None:
    """Called once the run directory, model and optimizer exist, before the first step."""


@hookspec
def simclr_on_log(run: RunContext, record: dict[str, Any]) -> None:
    """Called with each logged metrics record (a flat dict of plain Python numbers and strings)."""


@hookspec
def simclr_on_epoch_end(run: RunContext, epoch: int, record: dict[str, Any]) -> None:
    """Called at the end of every epoch with that epoch's summary record."""


@hookspec
def simclr_on_checkpoint_saved(run: RunContext, path: Path) -> None:
    """Called after a checkpoint has been written (atomically) to ``path``."""


@hookspec
def simclr_on_train_end(run: RunContext, record: dict[str, Any]) -> None:
    """Called once when training stops, normally or not (``record['status']`` says which)."""
