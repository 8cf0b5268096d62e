"""Metrics of translation quality, found by name.

Every metric works on stacks of matched images in native flux units, chunk by chunk (see
:mod:`survey2survey.metrics.base`); one concept per module:

===========  ====================================================================  =======
name         what it measures                                                      truth?
===========  ====================================================================  =======
flux         summed |pred - ref| vs the noise floor (Lin & Fouchez 2021, Fig. 5)   no
fourier      stacked FFT amplitude of high-pass images (Lin & Fouchez, Fig. 6)     no
ssim         SSIM and its luminance, contrast, structure terms (Survey2Survey)    no
magnitude    pseudo-flux magnitude within r_max (Survey2Survey Eq. 6)              no
snr          mean S/N within r_max (Survey2Survey Eq. 7)                           no
profile      radial luminosity profile in 1-px annuli (Survey2Survey Eq. 8)        no
photometry   aperture flux bias and scatter against the truth                      yes
noise        residual sigma and power spectrum against the truth                   yes
colour       aperture colours of adjacent bands vs the truth (else the reference)  no
===========  ====================================================================  =======

Importing this package loads no numerical library; numpy, scipy and photutils come with
the metric modules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["MetricInfo", "METRICS", "metric_names", "get_metric_class", "default_metrics", "parse_metrics"]


@dataclass(frozen=True)
class MetricInfo:
    """Registry entry: where a metric lives and whether it needs the truth."""

    name: str
    module: str
    cls: str
    needs_truth: bool
    summary: str


#: Registry, in report order.  A new metric is one module plus one line here.
METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("flux", "flux", "FluxMetric", False, "summed |pred - ref| vs the noise floor (Lin Fig. 5)"),
        MetricInfo("fourier", "fourier", "FourierMetric", False, "stacked FFT amplitude, high-pass images (Lin Fig. 6)"),
        MetricInfo("ssim", "ssim", "SSIMMetric", False, "SSIM and its luminance, contrast, structure terms"),
        MetricInfo("magnitude", "magnitude", "MagnitudeMetric", False, "pseudo-flux magnitude within r_max"),
        MetricInfo("snr", "snr", "SNRMetric", False, "mean S/N within r_max"),
        MetricInfo("profile", "profile", "ProfileMetric", False, "radial luminosity profile in 1-px annuli"),
        MetricInfo("photometry", "photometry", "PhotometryMetric", True, "aperture flux bias/scatter vs truth"),
        MetricInfo("noise", "noise", "NoiseMetric", True, "residual noise sigma and power spectrum vs truth"),
        MetricInfo("colour", "colour", "ColourMetric", False, "aperture colours of adjacent bands vs truth (else ref)"),
    )
}


def metric_names() -> list[str]:
    """Every registered metric name, in report order."""
    return list(METRICS)


def get_metric_class(name: str):
    """The :class:`~survey2survey.metrics.base.Metric` subclass registered as ``name``."""
    info = METRICS[name]
    module = importlib.import_module(f"survey2survey.metrics.{info.module}")
    return getattr(module, info.cls)


def default_metrics(have_truth: bool) -> list[str]:
    """All metrics that apply: those needing the truth only when it is given."""
    return [n for n, m in METRICS.items() if have_truth or not m.needs_truth]


def parse_metrics(text: str | None, have_truth: bool) -> list[str]:
    """Validate a ``--metrics`` value (comma-separated names, or ``all``).

    Returns the names in report order.

    Raises
    ------
    survey2survey.errors.UsageError
        Unknown name, or a metric that needs ``--truth`` without it.
    """
    from survey2survey.errors import UsageError

    if text is None or text.strip().lower() in ("", "all"):
        return default_metrics(have_truth)
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UsageError(f"unknown metric(s) {', '.join(unknown)} (known: {', '.join(METRICS)})")
    missing = [n for n in names if METRICS[n].needs_truth and not have_truth]
    if missing:
        raise UsageError(f"metric(s) {', '.join(missing)} need the noise-free images: give --truth DIR")
    return [n for n in METRICS if n in names]
