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

import atexit
import contextlib
import os
import signal
import sys
import threading

__all__ = ["interrupts_at_safe_points", "check_interrupt", "wait_some", "POLL_SECONDS", "command_signals",
           "command_ended", "worker_signals"]

#: Set by the first SIGTERM or SIGINT within :func:`interrupts_at_safe_points`.
_stop_requested = False
#: 1 within the outermost block (an inner one leaves the signals to it).
_depth = 0
#: True within :func:`command_signals`: a second signal exits the process at once.
_command_line = False
#: Signals received: during the command (:func:`command_signals`), or the block (a library call).
_received = 0
#: Set once the command has ended (:func:`command_ended`): a signal then exits with it at once.
_exit_code: int | None = None
#: The signal :func:`_interrupt_command` last acted on, and the unraisable hooks it replaced.
_last_signal = None
_hooks: list = []

#: Written, in one ``write``, when a second signal stops the command at once.
_STOPPED_AT_ONCE = b"s2s: error: interrupted again: stopped at once (temporary files may be left in the output directory)\n"

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_at_once() -> None:
    os.write(2, _STOPPED_AT_ONCE)
    os._exit(130)  # the workers die with their parent (worker_signals)


def _request_stop(signum, frame) -> None:
    """The first signal asks for a stop at the next safe point; a second stops at once:
    the ``s2s`` command exits (a stuck file system: no clean-up to wait for), a library
    caller gets its :class:`KeyboardInterrupt` here."""
    global _stop_requested, _received
    _received += 1
    if _received == 1:
        _stop_requested = True
        return
    if _command_line:
        _stop_at_once()
    raise KeyboardInterrupt


def _interrupt_command(signum, frame) -> None:
    """An ``s2s`` command's handler outside a pool's run: the first signal is Ctrl-C's
    :class:`KeyboardInterrupt`, a second one (its clean-up under way) stops at once; once
    the command has ended, a signal only ends the process, with the command's exit code."""
    global _received, _last_signal
    if _exit_code is not None:  # the work is done: do not die of the signal in the interpreter's shutdown
        os._exit(_exit_code)
    _received, _last_signal = _received + 1, signum
    if _received == 1:
        raise KeyboardInterrupt
    _stop_at_once()


def check_interrupt() -> None:
    """Raise :class:`KeyboardInterrupt` here if a signal asked the run to stop.

    Called by the schedules between steps, where no lock of the executors is held.
    """
    if _stop_requested:
        raise KeyboardInterrupt


#: Seconds a loop waits for its futures before it looks again for a signal's stop request.
POLL_SECONDS = 0.5


def wait_some(futures):
    """:func:`check_interrupt`, then wait until one of ``futures`` is done, at most
    :data:`POLL_SECONDS`: ``(done, not_done)`` as :func:`concurrent.futures.wait` gives them."""
    from concurrent.futures import FIRST_COMPLETED, wait  # not on the command line's start-up path

    check_interrupt()
    return wait(futures, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)


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
    global _stop_requested, _depth, _received
    if threading.current_thread() is not threading.main_thread() or _depth:  # an outer block has the signals
        yield
        return
    with _signals_blocked():
        _stop_requested, _depth = False, 1
        if not _command_line:  # a library call counts its own signals
            _received = 0
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
def command_signals(ending: bool = False):
    """Around an ``s2s`` command: SIGTERM interrupts as Ctrl-C does (where the command has
    not ignored or handled them), so that the command exits as interrupted (130) with its
    temporary files removed, rather than dying; a second signal, during the clean-up or a
    pool's stop, exits at once.

    ``ending``: the process ends with this command (the console script).  The handlers
    then stay: a signal after the command, while the interpreter shuts down (torch takes
    half a second), exits at once with the command's exit code (:func:`command_ended`;
    130 until it is given), and the signals are ignored for the last of the shutdown,
    where Python has taken its handlers down.  A no-op outside the main thread.
    """
    global _command_line, _received, _exit_code
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _signals_blocked():
        _command_line, _received, _exit_code = True, 0, None
        previous = {}
        for sig in _SIGNALS:
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):  # not ignored or the caller's
                previous[sig] = signal.signal(sig, _interrupt_command)
        _hooks.append(sys.unraisablehook)
        sys.unraisablehook = _redeliver_lost_interrupt
    try:
        yield
    finally:
        with _signals_blocked():
            _command_line = False
            sys.unraisablehook = _hooks.pop()
            if ending and previous:
                _exit_code = 130
                _ending_signals[:] = list(previous)
            else:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)


def _redeliver_lost_interrupt(unraisable) -> None:
    """A signal's :class:`KeyboardInterrupt` raised inside a ``__del__`` or a weakref
    callback (a garbage collection, often while plots are drawn) cannot propagate: Python
    would print it as "Exception ignored" and go on as if no signal had come.  Instead it
    is not counted, and the signal is sent again from a thread a moment later, to be raised
    in the command's own code."""
    global _received
    if not issubclass(unraisable.exc_type, KeyboardInterrupt) or not _received or _last_signal is None:
        (_hooks[-1] if _hooks else sys.__unraisablehook__)(unraisable)
        return
    _received -= 1
    threading.Timer(0.01, os.kill, (os.getpid(), _last_signal)).start()


def command_ended(code: int) -> None:
    """The command's exit code, for a signal that comes while the process shuts down."""
    global _exit_code
    if _exit_code is not None:
        _exit_code = int(code)


#: The signals an ending command left with its handler (:func:`command_signals`).
_ending_signals: list = []


@atexit.register  # registered first, at import: run last, once the other exit functions are done
def _ignore_signals_at_exit() -> None:
    """The shutdown's last part (its objects freed, torch's too) runs without Python's
    handlers: there a signal would kill the finished process; it is ignored instead."""
    for sig in _ending_signals:
        signal.signal(sig, signal.SIG_IGN)


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
