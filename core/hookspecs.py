"""The hooks a `simclr` plugin may implement.

A plugin is a module (or object) named by an entry point in the ``simclr`` group. Registration hooks receive a
:class:`~simclr.registry.Registrar` bound to one component kind; lifecycle hooks receive the running
:class:`~simclr.trainer.RunContext`.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "simclr"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def simclr_register_losses(registry: Any) -> None:
    """Add loss components: ``registry.add(name, factory, params_model, description)``."""


@hookspec
def simclr_register_miners(registry: Any) -> None:
    """Add negative-mining strategies used by triplet-style losses."""


@hookspec
def simclr_register_backbones(registry: Any) -> None:
    """Add backbone networks (images [B, 3, H, W] -> features [B, F], with ``feature_dim``)."""


@hookspec
def simclr_register_optimizers(registry: Any) -> None:
    """Add optimizers (factory(params, model) -> torch.optim.Optimizer)."""


@hookspec
def simclr_register_datasets(registry: Any) -> None:
    """Add datasets (factory(params) -> simclr.data.ImageDataset)."""


@hookspec
def simclr_register_callbacks(registry: Any) -> None:
    """Add callbacks a config can switch on (factory(params) -> object implementing lifecycle hooks)."""


@hookspec
def simclr_on_train_start(run: Any) -> None:
    """Called once the run directory, model and optimizer exist, before the first step."""


@hookspec
def simclr_on_log(run: Any, record: dict) -> None:
    """Called with each logged metrics record (a flat dict of plain Python numbers and strings)."""


@hookspec
def simclr_on_epoch_end(run: Any, epoch: int, record: dict) -> None:
    """Called at the end of every epoch with that epoch's summary record."""


@hookspec
def simclr_on_checkpoint_saved(run: Any, path: Any) -> None:
    """Called after a checkpoint has been written (atomically) to ``path``."""


@hookspec
def simclr_on_train_end(run: Any, record: dict) -> None:
    """Called once when training stops, normally or not (``record['status']`` says which)."""
