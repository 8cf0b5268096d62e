"""Ctrl-C and SIGTERM during a run with worker pools: a stop at a safe point.

Python's own SIGINT handler raises :class:`KeyboardInterrupt` at whatever bytecode runs.
Inside :func:`concurrent.futures.wait`, which takes the futures' locks one by one in a
Python loop, it can leave some of them held; the executor's thread that completes those
futures then blocks, and the shutdown that follows waits for ever.  Within
:func:`interrupts_at_safe_points` the first signal only sets a flag, and
:func:`check_interrupt`, called by the loops between their steps, raises the
:class:`KeyboardInterrupt` there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

__all__ = ["interrupts_at_safe_points", "check_interrupt"]

#: Set by the first SIGTERM or SIGINT within :func:`interrupts_at_safe_points`.
_stop_requested = False
#: 1 within the outermost block (an inner one leaves the signals to it).
_depth = 0

#: Written, in one ``write``, when a second signal stops the run at once.
_STOPPED_AT_ONCE = b"s2s: error: interrupted again: stopped at once (temporary files may be left in the output directory)\n"


def _request_stop(signum, frame) -> None:
    """The first signal asks for a stop at the next safe point; a second stops at once."""
    global _stop_requested
    if _stop_requested:  # the user insists (a stuck file system?): no clean-up to wait for
        os.write(2, _STOPPED_AT_ONCE)
        os._exit(130)  # the workers get SIGTERM from the kernel as their parent dies
    _stop_requested = True


def check_interrupt() -> None:
    """Raise :class:`KeyboardInterrupt` here if a signal asked the run to stop.

    Called by the schedules between steps, where no lock of the executors is held.
    """
    if _stop_requested:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_at_safe_points():
    """Within the block, SIGTERM (a batch scheduler's ``scancel``, ``kill``) and SIGINT
    (Ctrl-C) stop the run as an interruption, raised by :func:`check_interrupt` where the
    loop calls it: the pool is shut down and the command exits as interrupted, instead of
    dying and leaving its workers behind, or hanging.  A second signal exits at once.  A
    signal that comes after the loop's last check still ends the block as interrupted.

    A no-op outside the main thread (only it may install signal handlers) and within
    another such block.
    """
    global _stop_requested, _depth
    if threading.current_thread() is not threading.main_thread() or _depth:  # an outer block has the signals
        yield
        return
    _stop_requested, _depth = False, 1
    # SIGINT ignored (a run started in the background, `nohup`) stays ignored
    sigs = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {sig: signal.signal(sig, _request_stop) for sig in sigs}
    try:
        yield
        check_interrupt()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_requested, _depth = False, 0
