"""`simclr train --nproc G`: run the same command line in G processes on this node, under torchrun's agent.

The agent runs inside this process (``torch.distributed.run.run``), not as a `torchrun` child, so that what the
user sees is simclr's: each rank leaves its exit status and error message in a folder (:data:`RANK_REPORTS_ENV`);
rank 0 prints its own error, and this process prints the other ranks' errors that differ from it and exits with
the status that matters most (2 bad input, then 130 interrupted, then 1), instead of torchrun's traceback and
exit status 1. A signal to this process (Ctrl-C, or SIGTERM from a scheduler) reaches the workers once, through
the agent, which waits for them to save their checkpoint and stop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from simclr.atomic import write_json
from simclr.cli.output import error
from simclr.plugin_manager import PLUGINS_CHECKED_ENV

#: set for the workers of `--nproc`: the folder where each rank leaves its exit status and error message
RANK_REPORTS_ENV = "SIMCLR_RANK_REPORTS"
#: the signals torchrun's agent takes over while it runs (and this module restores after)
AGENT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
#: torch's agent SIGKILLs the ranks this long after passing them a signal (its default, 30 s, can be shorter than
#: the wait for the ranks' next logged step, where they agree to stop, plus the checkpoint); a value the user set
#: wins; a torch too old to read the variable keeps 30 s
SHUTDOWN_TIMEOUT_ENV = "TORCH_ELASTIC_SHUTDOWN_TIMEOUT"
SHUTDOWN_TIMEOUT_S = 300


def _is_nproc_option(token: str) -> bool:
    """``--nproc`` or an abbreviation argparse accepts for it (``--np``, ``--npr``, ...), with or without ``=N``."""
    name = token.split("=", 1)[0]
    return name.startswith("--np") and "--nproc".startswith(name)


def torchrun_args(argv: list[str], nproc: int, out: Path | None = None) -> list[str]:
    """torchrun's arguments for running ``simclr <argv>`` in ``nproc`` local processes, without the ``--nproc``
    option (and with ``--out out`` added, so that every rank names the same run directory)."""
    rest: list[str] = []
    skip_value = False
    for token in argv:
        if skip_value:
            skip_value = False
        elif _is_nproc_option(token):
            skip_value = "=" not in token
        else:
            rest.append(token)
    if out is not None:
        rest += ["--out", str(out)]
    return ["--standalone", f"--nproc_per_node={nproc}", "-m", "simclr", *rest]


def report_error(exit_code: int, message: str) -> bool:
    """In a worker of `--nproc`, leave this rank's exit status and message for the launcher. Returns whether this
    process prints the message itself: rank 0 does (at once, as a single process would), the others leave it to
    the launcher, which prints it only where it differs from rank 0's."""
    folder = os.environ.get(RANK_REPORTS_ENV)
    if not folder:
        return True
    rank = int(os.environ.get("RANK", "0"))
    write_json({"exit_code": exit_code, "message": message}, Path(folder) / f"rank-{rank}.json")
    return rank == 0


def launch_torchrun(argv: list[str], nproc: int, out: Path | None = None) -> int:
    """Run ``simclr <argv>`` in ``nproc`` processes and return the exit status that tells what happened."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    failures: dict[int, int] = {}
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="simclr-ranks-") as reports:
        # this process warned of plugin problems already; the workers report their errors to it
        worker_env = {PLUGINS_CHECKED_ENV: "1", RANK_REPORTS_ENV: reports}
        worker_env[SHUTDOWN_TIMEOUT_ENV] = os.environ.get(SHUTDOWN_TIMEOUT_ENV, str(SHUTDOWN_TIMEOUT_S))
        with _environment(worker_env), _agent_signals_restored(), _quiet_agent():
            try:
                run(parse_args(torchrun_args(argv, nproc, out)))
            except SignalException:
                interrupted = True
            except ChildFailedError as exc:
                failures = {rank: failure.exitcode for rank, failure in exc.failures.items()}
        return exit_status(_read_reports(Path(reports)), failures, interrupted, nproc)


def _read_reports(folder: Path) -> dict[int, dict]:
    reports = {}
    for path in folder.glob("rank-*.json"):
        reports[int(path.stem.removeprefix("rank-"))] = json.loads(path.read_text())
    return reports


def exit_status(reports: dict[int, dict], failures: dict[int, int], interrupted: bool, nproc: int) -> int:
    """Print what rank 0 did not (the other ranks' differing messages; a rank that died without one) and return
    the status that matters most: 2 when any rank found bad input, else 130 when interrupted, else 1 when any
    rank failed, else 0."""
    shown = reports.get(0, {}).get("message")
    for rank in sorted(reports):
        message = reports[rank]["message"]
        if rank != 0 and message != shown:
            error(f"rank {rank}: {message}")
    for rank, code in sorted(failures.items()):
        if rank not in reports:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            error(f"rank {rank} {how} without a message (a crash, or stopped by the others' failure)")
    if interrupted:  # every rank got the signal and reports how it stopped, unless the agent had to kill it
        for rank in sorted(set(range(nproc)) - reports.keys()):
            error(
                f"rank {rank} did not stop within {os.environ.get(SHUTDOWN_TIMEOUT_ENV, SHUTDOWN_TIMEOUT_S)} s of "
                f"the signal and was killed (set {SHUTDOWN_TIMEOUT_ENV} to wait longer); a resume continues from "
                "the last checkpoint that was written"
            )
    codes = {report["exit_code"] for report in reports.values()} | {
        code for rank, code in failures.items() if rank not in reports
    }
    if 2 in codes:
        return 2
    if interrupted or 130 in codes:
        return 130
    return 1 if codes - {0} else 0


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ (the agent hands its environment to the workers); the environment as it was after,
    including what the agent itself sets (OMP_NUM_THREADS)."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _agent_signals_restored() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in AGENT_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _quiet_agent() -> Iterator[None]:
    """The agent's log (its launch settings, each worker's failure as a traceback) is not for simclr's users: what
    went wrong is what the ranks report."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
