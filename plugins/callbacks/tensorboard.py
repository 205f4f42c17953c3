"""TensorBoard event files under ``<run>/tensorboard`` (needs the optional `tensorboard` package)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import simclr


class TensorBoardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subdir: str = Field("tensorboard", description="folder inside the run directory")


class TensorBoard:
    def __init__(self, params: TensorBoardParams):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise simclr.UserError(
                "the tensorboard callback needs the tensorboard package: pip install 'simclr[tensorboard]'"
            ) from None
        self.subdir = params.subdir
        self._writer_class = SummaryWriter
        self.writer = None

    @simclr.hookimpl
    def simclr_on_train_start(self, run: simclr.RunContext) -> None:
        self.writer = self._writer_class(log_dir=str(run.dir / self.subdir))

    @simclr.hookimpl
    def simclr_on_log(self, run: simclr.RunContext, record: dict[str, Any]) -> None:
        self._write(record)

    @simclr.hookimpl
    def simclr_on_epoch_end(self, run: simclr.RunContext, epoch: int, record: dict[str, Any]) -> None:
        self._write(record)  # the epoch means, and the kNN monitor's knn_top1

    def _write(self, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if isinstance(value, int | float) and key not in ("epoch", "step"):
                self.writer.add_scalar(f"{record['type']}/{key}", value, record["step"])

    @simclr.hookimpl
    def simclr_on_train_end(self, run: simclr.RunContext, record: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.close()
