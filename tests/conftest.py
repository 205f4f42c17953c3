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
