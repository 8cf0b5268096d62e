"""Render the CLI reference (docs/cli.md) from the Typer app itself.

``python -m survey2survey.clidoc > docs/cli.md`` (or ``make docs``); ``tests/test_docs.py``
fails when docs/cli.md is out of step with the code.
"""

from __future__ import annotations

__all__ = ["render"]


def _param_rows(cmd, name: str) -> list[str]:
    ctx = cmd.make_context(name, [], resilient_parsing=True)
    rows = []
    for param in cmd.params:
        if param.name == "help":
            continue
        if param.param_type_name == "argument":
            record = (param.name.upper() + (" ..." if param.nargs == -1 else ""), "")
        else:
            record = param.get_help_record(ctx)
            if record is None:
                continue
        opts, help_text = record
        help_text = " ".join(help_text.split()).replace("|", "\\|")
        opts = opts.replace("|", "\\|")
        rows.append(f"| `{opts}` | {help_text} |")
    return rows


def render() -> str:
    """Markdown reference of every command, its arguments and options."""
    import typer.main

    from survey2survey.cli import app

    group = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Generated from the code by `python -m survey2survey.clidoc` (`make docs`); a test keeps it in step.",
        "",
        "## `s2s`",
        "",
        (group.help or "").strip(),
        "",
        "| argument / option | help |",
        "|---|---|",
    ]
    lines += _param_rows(group, "s2s")
    for name in sorted(group.commands):
        cmd = group.commands[name]
        lines += ["", f"## `s2s {name}`", "", (cmd.help or "").strip(), ""]
        rows = _param_rows(cmd, f"s2s {name}")
        if rows:
            lines += ["| argument / option | help |", "|---|---|", *rows]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
