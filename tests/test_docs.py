"""Docs that must stay in step with the code."""

from pathlib import Path

from survey2survey.clidoc import render

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    current = (ROOT / "docs" / "cli.md").read_text()
    assert current == render(), "docs/cli.md is stale: run `make docs`"


def test_metrics_reference_is_current_and_names_every_reported_number():
    from survey2survey.metrics import get_metric_class, metric_names
    from survey2survey.metrics.reference import render as render_metrics

    current = (ROOT / "docs" / "metrics.md").read_text()
    assert current == render_metrics(), "docs/metrics.md is stale: run `make docs`"
    for name in metric_names():
        cls = get_metric_class(name)
        for q in (*cls.columns, *cls.set_quantities):
            assert f"`{q.name}`" in current and q.description, (name, q.name)


def test_readme_opens_with_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    head = text[: text.index("## What it is")]
    assert "make demo" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()
