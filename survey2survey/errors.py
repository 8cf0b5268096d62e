"""Typed errors.  The CLI turns each into one line on stderr and an exit code.

Exit codes used across every command:

* 0 -- everything asked for was done;
* 1 -- the command ran but some inputs failed (each was reported), or it ran out of a
  resource on the way (:class:`ResourceError`: memory during training, disk space);
* 2 -- the command was misused (bad option, unknown survey, missing model, ...).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

__all__ = [
    "S2SError",
    "UsageError",
    "SurveyError",
    "CutoutError",
    "OutputExistsError",
    "ModelError",
    "ResourceError",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "first_line",
    "os_error_in",
    "write_failure",
]

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2


class S2SError(Exception):
    """Base class of every error the toolkit raises on purpose."""

    exit_code = EXIT_USAGE


class UsageError(S2SError):
    """The command was asked for something it cannot do (bad option values, ...)."""


class SurveyError(S2SError):
    """Unknown survey, or a survey definition that does not make sense."""


class ModelError(S2SError):
    """A model directory is missing, corrupted or does not fit the input."""


class ResourceError(S2SError):
    """The command ran out of memory (or another resource) while working; exit code 1.

    A request that clearly cannot fit is refused before any work as a :class:`UsageError`.
    """

    exit_code = EXIT_PARTIAL


class CutoutError(S2SError):
    """One input file cannot be used; ``str()`` names the file and the problem."""

    exit_code = EXIT_PARTIAL

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # raised in a worker process, it crosses to the parent pickled: rebuild it from
        # (path, reason), whatever the subclass's own constructor takes
        return _rebuild_cutout_error, (type(self), self.path, self.reason)


def _rebuild_cutout_error(cls: type, path: Path, reason: str) -> CutoutError:
    error = cls.__new__(cls)
    CutoutError.__init__(error, path, reason)
    return error


class OutputExistsError(CutoutError):
    """The output file exists and ``overwrite`` was not asked for."""

    def __init__(self, path: str | Path):
        super().__init__(path, "output exists (use --overwrite to replace it)")


def first_line(exc: BaseException, limit: int = 300, with_type: bool = False) -> str:
    """The first line of an exception's message, for a one-line error.

    Library errors (torch, ONNX Runtime, safetensors) carry multi-line messages; a
    user-facing error is one line.  ``"bad value"``, or ``"ValueError: bad value"`` with
    ``with_type``; the exception's type name when it has no message.  Long lines are cut
    at ``limit`` characters.
    """
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0][:limit]
    return f"{type(exc).__name__}: {line}" if with_type else line


#: File-system errors that mean "out of space" (exit 1); any other refusal to write
#: (read-only file system, permission, ...) is an unwritable output (exit 2).
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def os_error_in(exc: BaseException) -> OSError | None:
    """The first :class:`OSError` with an ``errno`` in ``exc`` or the exceptions it came from.

    Libraries re-raise a failed write as their own error (astropy's free-space check
    raises an ``AttributeError`` while handling the ``OSError``; ``raise ... from None``
    keeps ``__context__``), so the cause is looked for along the whole chain.
    """
    seen, bare = set(), None
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            if exc.errno is not None:
                return exc
            if bare is None and re.search(r"\d+ requested and \d+ written", str(exc)):
                # numpy's tofile (astropy writes arrays with it) reports a short write, which
                # on a regular file means the disk or the quota is full, without an errno
                bare = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        exc = exc.__cause__ or exc.__context__
    return bare


def write_failure(path: str | Path, exc: BaseException, hint: str = "") -> S2SError:
    """The one-line error for an output that could not be written.

    ``PATH: cannot write output (No space left on device)``: a :class:`ResourceError`
    (exit 1) when the disk or quota is full, else a :class:`UsageError` (exit 2: a
    read-only file system, no permission).  ``hint``, what to do once space is freed,
    ends the line of a full disk.
    """
    cause = os_error_in(exc)
    reason = (cause.strerror or str(cause)) if cause is not None else first_line(exc)
    if cause is not None and cause.errno in _NO_SPACE:
        return ResourceError(f"{path}: cannot write output ({reason})" + (f": {hint}" if hint else ""))
    return UsageError(f"{path}: cannot write output ({reason})")
