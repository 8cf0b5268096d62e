"""The ``s2s`` command line.

Each command lives in ``survey2survey/commands/<name>.py`` as a thin Typer function
(``main``) that parses options and calls one library function.  Command modules import
torch, astropy, galsim, photutils, reproject and onnxruntime inside ``main`` only, so
that ``s2s --help`` stays fast (``tests/test_cli.py`` checks ``sys.modules``).

Errors: every :class:`survey2survey.errors.S2SError` becomes one line on stderr and
its exit code (2 misuse, 1 some inputs failed); nothing the user did wrong prints a
traceback.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import sys
from typing import Optional

import typer

from survey2survey import __version__
from survey2survey.errors import EXIT_USAGE, S2SError, write_failure
from survey2survey.interrupts import command_ended, command_signals

__all__ = ["app", "main"]

#: Command name -> module under survey2survey.commands.  A new command is one module
#: plus one line here.
COMMANDS: dict[str, str] = {
    "surveys": "surveys",
    "prepare": "prepare",
    "train": "train",
    "translate": "translate",
    "emulate-noise": "emulate_noise",
    "noise-model": "noise_model",
    "export": "export",
    "evaluate": "evaluate",
}

#: errno values of an output that cannot be written (disk or quota full, read-only, refused).
_FILE_SYSTEM_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}

app = typer.Typer(
    name="s2s",
    help="survey2survey: translate galaxy cutouts between sky surveys, noise included.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"s2s (survey2survey) {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    surveys: Optional[str] = typer.Option(
        None,
        "--surveys",
        metavar="FILE",
        help="TOML file of extra survey definitions (also: $S2S_SURVEYS).",
    ),
) -> None:
    if surveys:
        from survey2survey.surveys import load_survey_file

        load_survey_file(surveys)


for _name, _module in COMMANDS.items():
    _cmd = importlib.import_module(f"survey2survey.commands.{_module}")
    app.command(_name, help=_cmd.__doc__)(_cmd.main)


def error(message: str) -> None:
    """Print one error line on stderr (the shared format of every command)."""
    typer.echo(f"s2s: error: {message}", err=True)


def _is_a(exc: BaseException, class_name: str) -> bool:
    """``exc`` is click's ``class_name`` (typer vendors its own click: matched by name)."""
    return any(cls.__name__ == class_name for cls in type(exc).__mro__)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the command's exit code."""
    try:
        # not standalone: click's usage errors come back here, to be printed on one line
        # SIGTERM interrupts as Ctrl-C does; the console script's process ends with the command
        with command_signals(ending=argv is None):
            result = app(args=argv, prog_name="s2s", standalone_mode=False)
        code = result if isinstance(result, int) else 0  # typer.Exit(n), --help and --version give n
        if code == 130:  # typer turns a command's KeyboardInterrupt (Ctrl-C, SIGTERM) into a silent exit 130
            error("interrupted")
    except S2SError as exc:
        error(str(exc))
        code = exc.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        code = 130
    except OSError as exc:
        if not (exc.filename and exc.errno in _FILE_SYSTEM_ERRORS):
            raise
        # a file-system failure no command turned into its own line: still one line
        error(f"{exc.filename}: {exc.strerror or exc}")
        code = write_failure(exc.filename, exc).exit_code  # a full disk 1, else 2
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    except Exception as exc:
        if _is_a(exc, "NoArgsIsHelpError"):  # bare `s2s`: typer has printed the help
            code = EXIT_USAGE
        elif _is_a(exc, "ClickException"):  # bad option value, unknown option, missing argument
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            error(f"{where}{' '.join(exc.format_message().split())}{hint}")
            code = exc.exit_code
        elif _is_a(exc, "Abort"):
            error("aborted")
            code = 1
        else:
            raise
    if argv is None:
        for stream in (sys.stdout, sys.stderr):  # what the command said is out before any signal can end it
            with contextlib.suppress(Exception):
                stream.flush()
        command_ended(code)
        sys.exit(code)
    return code
