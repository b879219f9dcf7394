"""Ctrl-C and SIGTERM that wait for a safe point, so state saved on interruption is consistent."""
from __future__ import annotations

import contextlib
import signal


class StopRequest:
    """Set by the first SIGINT/SIGTERM inside :func:`deferred_interrupts`; poll ``requested``."""

    def __init__(self):
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def deferred_interrupts():
    """Inside the block the first SIGINT or SIGTERM only sets the yielded :class:`StopRequest`
    (the loop saves and stops at its next safe point); a second one raises KeyboardInterrupt at once."""
    stop = StopRequest()

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt(f"signal {signum} (second)")
        stop.signum = signum

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield stop
        return
    try:
        yield stop
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
