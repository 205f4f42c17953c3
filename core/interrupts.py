"""SIGTERM (a scheduler's, or ``kill``) handled as Ctrl-C is: the code that catches KeyboardInterrupt stops
cleanly, and the command exits 130 with a message. Training has handlers of its own, which save a checkpoint at the
next step (:func:`simclr.trainer.stop_on_signals`)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block; the handler there before is back after it. Off the main
    thread, where no handler can be set, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
