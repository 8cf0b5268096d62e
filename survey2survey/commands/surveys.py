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

    table = Table(title="Surveys", caption="PSF and depth in r (else the middle band); every band: --json")
    for col in ("name", "bands", "arcsec/px", "cutout px", "FoV arcsec", "zero point", "x to nanomaggies", "unit",
                "PSF FWHM", "5σ depth"):
        table.add_column(col)
    for s in surveys:
        table.add_row(
            s.name, "".join(s.bands), f"{s.pixel_scale:g}", str(s.cutout_size), f"{s.field_of_view:.2f}",
            f"{s.zero_point:g}", f"{s.flux_factor:.4g}", s.flux_unit, *_physics_cells(s),
        )
    table_console().print(table)


def _physics_cells(s) -> tuple[str, str]:
    """(PSF, depth) of the survey's r band (else its middle band), "-" where the registry has none."""
    band = "r" if "r" in s.bands else s.bands[len(s.bands) // 2]
    psf = f"{s.psf_profile} {s.typical_fwhm(band):.2f}\" ({band})" if s.psf_profile and s.psf_fwhm else "-"
    depth = f"{s.depth[s.band_index(band)]:.1f} ({band})" if s.depth else "-"
    return psf, depth
