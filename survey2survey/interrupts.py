"""Ctrl-C and SIGTERM: a command stops as interrupted, a run with worker pools at a safe point.

Python's own SIGINT handler raises :class:`KeyboardInterrupt` at whatever bytecode runs.
Inside :func:`concurrent.futures.wait`, which takes the futures' locks one by one in a
Python loop, it can leave some of them held; the executor's thread that completes those
futures then blocks, and the shutdown that follows waits for ever.  Within
:func:`interrupts_at_safe_points` the first signal only sets a flag, and
:func:`check_interrupt`, called by the loops between their steps, raises the
:class:`KeyboardInterrupt` there.

* :func:`command_signals` -- around a whole ``s2s`` command: SIGTERM (``kill``,
  ``scancel``) interrupts as Ctrl-C does, and a second signal during a pool's run exits
  at once;
* :func:`worker_signals` -- in a pool's worker process: the parent alone decides (both
  signals ignored), and the worker dies with its parent (Linux).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

__all__ = ["interrupts_at_safe_points", "check_interrupt", "command_signals", "worker_signals"]

#: Set by the first SIGTERM or SIGINT within :func:`interrupts_at_safe_points`.
_stop_requested = False
#: 1 within the outermost block (an inner one leaves the signals to it).
_depth = 0
#: True within :func:`command_signals`: a second signal exits the process at once.
_command_line = False

#: Written, in one ``write``, when a second signal stops the command at once.
_STOPPED_AT_ONCE = b"s2s: error: interrupted again: stopped at once (temporary files may be left in the output directory)\n"

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _request_stop(signum, frame) -> None:
    """The first signal asks for a stop at the next safe point; a second stops at once:
    the ``s2s`` command exits (a stuck file system: no clean-up to wait for), a library
    caller gets its :class:`KeyboardInterrupt` here."""
    global _stop_requested
    if not _stop_requested:
        _stop_requested = True
        return
    if _command_line:
        os.write(2, _STOPPED_AT_ONCE)
        os._exit(130)  # the workers die with their parent (worker_signals)
    raise KeyboardInterrupt


def check_interrupt() -> None:
    """Raise :class:`KeyboardInterrupt` here if a signal asked the run to stop.

    Called by the schedules between steps, where no lock of the executors is held.
    """
    if _stop_requested:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_blocked():
    """SIGINT and SIGTERM held back (delivered on leaving) while handlers and state change."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def interrupts_at_safe_points():
    """Within the block, SIGTERM (a batch scheduler's ``scancel``, ``kill``) and SIGINT
    (Ctrl-C) stop the run as an interruption, raised by :func:`check_interrupt` where the
    loop calls it: the pool is shut down and the command exits as interrupted, instead of
    dying and leaving its workers behind, or hanging.  A second signal stops at once (see
    :func:`_request_stop`).  A signal that comes after the loop's last check still ends
    the block as interrupted.

    A no-op outside the main thread (only it may install signal handlers) and within
    another such block.
    """
    global _stop_requested, _depth
    if threading.current_thread() is not threading.main_thread() or _depth:  # an outer block has the signals
        yield
        return
    with _signals_blocked():
        _stop_requested, _depth = False, 1
        # SIGINT ignored (a run started in the background, `nohup`) stays ignored
        sigs = [s for s in _SIGNALS if s != signal.SIGINT or signal.getsignal(s) is not signal.SIG_IGN]
        previous = {sig: signal.signal(sig, _request_stop) for sig in sigs}
    try:
        yield
        check_interrupt()
    finally:
        with _signals_blocked():
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            _stop_requested, _depth = False, 0


@contextlib.contextmanager
def command_signals():
    """Around an ``s2s`` command: SIGTERM raises :class:`KeyboardInterrupt` as Ctrl-C does
    (where the command has not ignored or handled it), so that the command exits as
    interrupted (130) with its temporary files removed, rather than dying; and within a
    pool's run a second signal exits at once.  A no-op outside the main thread."""
    global _command_line
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _signals_blocked():
        previous = signal.getsignal(signal.SIGTERM)
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        _command_line = True
    try:
        yield
    finally:
        with _signals_blocked():
            if previous is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _command_line = False


def worker_signals() -> None:
    """In a pool's worker process: Ctrl-C (it reaches the whole process group) and SIGTERM
    (a scheduler's ``scancel`` signals every process) are the parent's to act on -- it
    shuts the pool down and the workers finish their task: no half-written file, no
    traceback per worker.  On Linux the worker is killed when its parent dies (even by
    SIGKILL), so a killed run never leaves workers behind, blocked on the pool's pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
