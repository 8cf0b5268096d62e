"""List the surveys the toolkit knows (built-in and user-defined)."""

from __future__ import annotations

import typer


def main(
    as_json: bool = typer.Option(False, "--json", help="Print the definitions as JSON."),
) -> None:
    from survey2survey.surveys import list_surveys

    surveys = list_surveys()
    if as_json:
        import json

        typer.echo(json.dumps({s.name: s.to_dict() for s in surveys}, indent=2))
        return
    from rich.table import Table

    from survey2survey.progress import table_console

    table = Table(title="Surveys")
    for col in ("name", "bands", "arcsec/px", "cutout px", "FoV arcsec", "zero point", "x to nanomaggies", "unit"):
        table.add_column(col)
    for s in surveys:
        table.add_row(
            s.name, "".join(s.bands), f"{s.pixel_scale:g}", str(s.cutout_size), f"{s.field_of_view:.2f}",
            f"{s.zero_point:g}", f"{s.flux_factor:.4g}", s.flux_unit,
        )
    table_console().print(table)
