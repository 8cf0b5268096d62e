"""``docs/metrics.md``: every metric of ``s2s evaluate`` and every number it reports, from the code.

    python -m survey2survey.metrics.reference > docs/metrics.md    # what `make docs` runs

The page is the metrics' own titles, docstrings and :class:`~survey2survey.metrics.base.Quantity`
descriptions, so it cannot drift from what the report prints (``tests/test_docs.py``).
"""

from __future__ import annotations

import inspect

from survey2survey.metrics import get_metric_class, metric_names

__all__ = ["render"]

_HEADER = """# Metrics reference

Every metric `s2s evaluate --metrics ...` measures and every number it reports, generated from
the code (`python -m survey2survey.metrics.reference > docs/metrics.md`, which `make docs` runs).
How to run an evaluation is in [guide.md](guide.md#evaluating).

How to read the report:

- **pred** is the translation, **ref** the real (or simulated) cutout of the target survey,
  **truth** its noise-free image (`--truth`, simulations only). **cmp** is what a colour or a
  flux is compared with: the truth when there is one, else the reference.
- **Per image** quantities are measured on every image and band; the terminal table shows their
  median ± sigma_MAD over the images (`per_image.csv` has every value). **Per set** quantities
  are one number per band for the whole evaluation.
- **Ideal** is a perfect translation's value: a number, `lower`/`higher` for the better
  direction, or nothing for a quantity that describes the data. A translation from a shallower
  survey cannot reach some ideals: its noise is the target's, but what the input's noise hid is
  lost (e.g. `aperture flux scatter pred/ref` is 1 only for an image as deep as the reference).
- Units: `{flux}` is the target survey's native flux unit per pixel (nanomaggy for SDSS, ADU at
  zero point 30 for CFHT).
"""


def _summary(cls) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(quantities) -> list[str]:
    rows = ["| quantity | key | unit | ideal | meaning |", "|---|---|---|---|---|"]
    for q in quantities:
        rows.append(f"| {_cell(q.label)} | `{q.name}` | {_cell(q.unit)} | {_cell(q.ideal)} | {_cell(q.description)} |")
    return rows


def render() -> str:
    """The whole page, Markdown."""
    lines = [_HEADER]
    for name in metric_names():
        cls = get_metric_class(name)
        lines += [f"## `{name}`: {cls.title}", "", _summary(cls), ""]
        if cls.needs_truth:
            lines += ["Needs the noise-free truth (`--truth`).", ""]
        for key, value in cls.parameters.items():
            lines += [f"- `{key}`: {_cell(value)}"]
        if cls.parameters:
            lines += [""]
        if cls.columns:
            lines += ["Per image:", "", *_table(cls.columns), ""]
        if cls.set_quantities:
            lines += ["Per set:", "", *_table(cls.set_quantities), ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
