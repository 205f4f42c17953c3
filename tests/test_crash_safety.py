"""Crash safety: a SIGKILL in the middle of writing a checkpoint leaves the previous one intact and resumable; the
run directory's writability and free space are checked before anything is written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
import yaml
from conftest import MINIMAL_RUN, run_simclr

from simclr import config
from simclr.checkpoint import load_checkpoint
from simclr.errors import UserError
from simclr.trainer import Trainer

pytestmark = pytest.mark.slow

TINY = {**MINIMAL_RUN, "train": {**MINIMAL_RUN["train"], "epochs": 3}}

# `simclr train`, with torch.save replaced so that the second checkpoint (after epoch 2) stops half-written in
# its temp file: it writes half the bytes, flushes, leaves a marker file and waits to be killed.
DRIVER = """
import io, sys, time
from pathlib import Path
import torch
from simclr.cli.main import main

real_save = torch.save
calls = []

def stalling_save(obj, f, *args, **kwargs):
    calls.append(f)
    if len(calls) < 2:
        return real_save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    real_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    Path(sys.argv[3]).write_text(f.name)
    time.sleep(300)

torch.save = stalling_save
sys.exit(main(["train", sys.argv[1], "--out", sys.argv[2], "--no-progress"]))
"""


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(TINY))
    run, marker = tmp_path / "run", tmp_path / "writing"
    child = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(exp), str(run), str(marker)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, f"the training ended before the stalled save:\n{child.stderr.read()}"
            assert time.monotonic() < deadline, "the stalled save never started"
            time.sleep(0.1)
        temp_file = Path(marker.read_text())
        assert temp_file.parent == run / "checkpoints" and temp_file.stat().st_size > 0
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    last = run / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    assert state["global_step"] == 1 and state["epoch"] == 1  # the checkpoint of epoch 1, intact
    assert temp_file.name != "last.pt"  # the half-written bytes never took last.pt's name
    with pytest.raises(UserError, match="truncated"):
        load_checkpoint(temp_file)  # and they were indeed unreadable: the kill came mid-write

    resumed = run_simclr("train", "--resume", str(run), "--no-progress", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final = load_checkpoint(last)
    assert final["epoch"] == 3 and final["global_step"] == 3
    assert not temp_file.exists()  # the resume cleared the killed write's leftover


def _read_only_run_dir(tmp_path: Path) -> Path:
    """A run directory whose parent cannot be written: a read-only folder, or (as root, who writes anywhere) a
    path under a plain file."""
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    if not os.access(parent, os.W_OK):
        return parent / "run"
    parent.chmod(0o755)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "run"


def test_unwritable_run_dir_exits_2_before_writing(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(TINY))
    run = _read_only_run_dir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    try:
        result = run_simclr("train", str(exp), "--out", str(run), cwd=tmp_path, timeout=120)
    finally:
        (tmp_path / "read-only").chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert "cannot write" in result.stderr and str(run.parent) in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_little_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    import simclr.rundir

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(simclr.rundir.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 5 * 1024**2, 5 * 1024**2))
    run = tmp_path / "run"
    with pytest.raises(UserError, match=r"only 5 MiB free .* at least 200 MiB"):
        Trainer(config.experiment_from_dict(TINY), run, show_progress=False)
    assert not run.exists()
