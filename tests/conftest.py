"""Shared test helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"

#: the smallest complete experiment: one step per epoch of a 4-wide small_resnet on 64 random 16 px images
MINIMAL_RUN = {
    "name": "tiny",
    "data": {"dataset": {"name": "synthetic", "image_size": 16, "count": 64}, "batch_size": 32},
    "model": {"backbone": {"name": "small_resnet", "width": 4}, "projection": {"out_dim": 8}},
    "loss": {"name": "nt_xent"},
    "optimizer": {"name": "adam", "lr": 0.001},
    "train": {
        "epochs": 1,
        "device": "cpu",
        "max_steps_per_epoch": 1,
        "callbacks": [{"name": "metrics_jsonl"}],
        "knn_monitor_every": 0,
    },
    "eval": {"after_train": False},
}

torch.set_num_threads(min(2, os.cpu_count() or 1))


def run_simclr(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run the `simclr` command in a subprocess (as a user would) and return the CompletedProcess."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "simclr", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_simclr
