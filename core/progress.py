"""Training progress: rich bars on a terminal, plain log lines otherwise (CI, nohup, files).

Updated only when the trainer logs (every ``train.log_every`` steps), from numbers it has already read back from
the device, so showing progress never adds a GPU sync.
"""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger("simclr")


def _summary(record: dict) -> str:
    return f"loss {record['loss']:.4f}  lr {record['lr']:.3g}  {record['images_per_sec']:.0f} img/s"


class TrainProgress:
    def __init__(self, epochs: int, steps_per_epoch: int, enabled: bool = True):
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.enabled = enabled
        console = Console(file=sys.stderr)
        self.rich = enabled and console.is_terminal
        self.progress: Progress | None = None
        if self.rich:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[summary]}"),
                TimeRemainingColumn(),
                console=console,
                refresh_per_second=4,
            )
            self.epoch_task = self.progress.add_task("epochs", total=epochs, summary="")
            self.step_task = self.progress.add_task("steps", total=steps_per_epoch, summary="")
            self.progress.start()

    def start_epoch(self, epoch: int, step_in_epoch: int) -> None:
        if self.progress:
            self.progress.update(self.epoch_task, completed=epoch, description=f"epoch {epoch + 1}/{self.epochs}")
            self.progress.update(self.step_task, completed=step_in_epoch)

    def step(self, step_in_epoch: int, record: dict) -> None:
        if not self.enabled:
            return
        if self.progress:
            self.progress.update(self.step_task, completed=step_in_epoch, summary=_summary(record))
        else:
            log.info(
                "epoch %d/%d step %d/%d  %s",
                record["epoch"] + 1,
                self.epochs,
                step_in_epoch,
                self.steps_per_epoch,
                _summary(record),
            )

    def end_epoch(self, record: dict) -> None:
        if not self.enabled:
            return
        if self.progress:
            self.progress.update(self.epoch_task, completed=record["epoch"] + 1, summary=_summary(record))
        log.info(
            "epoch %d/%d done in %.1fs  %s",
            record["epoch"] + 1,
            self.epochs,
            record["seconds"],
            _summary(record),
        )

    def close(self) -> None:
        if self.progress:
            self.progress.stop()
