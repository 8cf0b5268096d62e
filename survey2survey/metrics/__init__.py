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

The registry below is the one list: ``s2s evaluate --help``, docs/cli.md and the
``--metrics`` check derive from it.  Each metric class owns its name, whether it needs
the truth (``needs_truth``), its report parameters and its plots; ``tests/test_metrics.py``
checks that each entry names a class of that name.  Importing this package loads no
numerical library; numpy, scipy and photutils come with the metric modules.
"""

from __future__ import annotations

import importlib

__all__ = ["METRICS", "metric_names", "get_metric_class", "default_metrics", "parse_metrics"]

#: Metric name -> ``"module:Class"`` under survey2survey.metrics, in report order.  A new
#: metric is one module plus one line here.
METRICS: dict[str, str] = {
    "flux": "flux:FluxMetric",
    "fourier": "fourier:FourierMetric",
    "ssim": "ssim:SSIMMetric",
    "magnitude": "magnitude:MagnitudeMetric",
    "snr": "snr:SNRMetric",
    "profile": "profile:ProfileMetric",
    "photometry": "photometry:PhotometryMetric",
    "noise": "noise:NoiseMetric",
    "colour": "colour:ColourMetric",
}


def metric_names() -> list[str]:
    """Every registered metric name, in report order."""
    return list(METRICS)


def get_metric_class(name: str):
    """The :class:`~survey2survey.metrics.base.Metric` subclass registered as ``name``."""
    module, cls = METRICS[name].split(":")
    return getattr(importlib.import_module(f"survey2survey.metrics.{module}"), cls)


def default_metrics(have_truth: bool) -> list[str]:
    """All metrics that apply: those needing the truth only when it is given."""
    return [n for n in METRICS if have_truth or not get_metric_class(n).needs_truth]


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
    missing = [n for n in names if get_metric_class(n).needs_truth and not have_truth]
    if missing:
        raise UsageError(f"metric(s) {', '.join(missing)} need the noise-free images: give --truth DIR")
    return [n for n in METRICS if n in names]
