"""Append each logged record, one JSON object per line, to ``<run>/metrics.jsonl``."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import simclr


class MetricsJsonlParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field("metrics.jsonl", description="file name inside the run directory")


class MetricsJsonl:
    def __init__(self, params: MetricsJsonlParams):
        self.filename = params.filename

    def _write(self, run: simclr.RunContext, record: dict[str, Any]) -> None:
        with open(run.dir / self.filename, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    @simclr.hookimpl
    def simclr_on_log(self, run: simclr.RunContext, record: dict[str, Any]) -> None:
        self._write(run, record)

    @simclr.hookimpl
    def simclr_on_epoch_end(self, run: simclr.RunContext, epoch: int, record: dict[str, Any]) -> None:
        self._write(run, record)
