"""What every metric looks like to :mod:`survey2survey.evaluate`.

A metric is a small class fed a stream of chunks of matched images and asked at the end
for its set-level results:

* ``update(pred, ref, truth)`` takes arrays of shape (n, C, H, W) in native flux units
  (C = the bands being evaluated) and returns the per-image quantities, each an array of
  shape (n, C), keyed by the names in ``columns``; it is thread-safe;
* ``result()`` returns a :class:`MetricResult`: scalars per band (``values``) and arrays for
  plots (``arrays``, band axis first), for quantities defined on the whole set, such as a
  stacked Fourier map or a KS statistic.

Chunks keep the memory bounded (2,500 CFHT cutouts in five bands are 0.9 GB per set).
"""

from __future__ import annotations

import abc

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = ["Quantity", "MetricContext", "MetricResult", "Metric"]


@dataclass(frozen=True)
class Quantity:
    """One number a metric reports, per image or per set.

    Attributes
    ----------
    name : str
        Column / key name (``flux_absdiff``).
    label : str
        Short human label for tables and plots.
    unit : str
        Unit; ``{flux}`` stands for the survey's native flux unit.
    ideal : str
        The value of a perfect translation, or the better direction: ``"0"``, ``"1"``,
        ``"lower"``, ``"higher"``, or ``""`` for descriptive quantities.
    description : str
        One sentence for the report.
    headline : bool
        Shown in the terminal table (every quantity goes to the files).
    """

    name: str
    label: str
    unit: str = ""
    ideal: str = ""
    description: str = ""
    headline: bool = False

    def unit_for(self, flux_unit: str) -> str:
        return self.unit.replace("{flux}", flux_unit or "native units")


@dataclass(frozen=True)
class MetricContext:
    """What a metric needs to know about the images besides their pixels.

    Attributes
    ----------
    bands : tuple of str
        Names of the C bands of the arrays given to ``update``.
    pixel_scale : float, optional
        Arcsec per pixel.
    zero_point : float, optional
        AB magnitude of one native flux unit (magnitudes need it).
    flux_unit : str
        Native flux unit, for labels.
    r_max : float, optional
        Radius (px) of the region for magnitude, S/N and profile; default half the cutout.
    aperture_radius : float, optional
        Radius (px) of the photometry aperture; default 2 arcsec or 5 px without a scale.
    """

    bands: tuple[str, ...]
    pixel_scale: float | None = None
    zero_point: float | None = None
    flux_unit: str = ""
    r_max: float | None = None
    aperture_radius: float | None = None


@dataclass
class MetricResult:
    """Set-level output of a metric.

    Attributes
    ----------
    values : dict
        ``{band: {name: float or None}}``, JSON-ready.
    arrays : dict
        ``{name: ndarray}`` for plots; per-band arrays have the band axis first.
    notes : dict
        Free-form JSON-ready facts (methods used, parameters).
    """

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


class Metric(abc.ABC):
    """Base class: subclasses set the class attributes and implement ``measure``.

    ``measure`` is a pure function of one chunk; :meth:`update` calls it and files its
    partial results under a lock, so that several threads may feed one metric (the
    evaluation reads and measures chunks in parallel).  ``result`` then combines the
    partials in chunk order with :meth:`_concat` and :meth:`_sum`.
    """

    #: Registry name (``--metrics`` value).
    name: ClassVar[str] = ""
    #: One-line title for reports.
    title: ClassVar[str] = ""
    #: Needs the noise-free images (``--truth``).
    needs_truth: ClassVar[bool] = False
    #: Per-image quantities returned by ``update``.
    columns: ClassVar[tuple[Quantity, ...]] = ()
    #: Set-level quantities in ``result().values``.
    set_quantities: ClassVar[tuple[Quantity, ...]] = ()
    #: How the metric measures, for the ``parameters`` of metrics.json.
    parameters: ClassVar[dict[str, str]] = {}
    #: Keys of ``result().notes`` that describe the whole evaluation (``noise_sigma``):
    #: the evaluation keeps them in ``Evaluation.notes``.
    evaluation_notes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def table_notes(cls, notes: dict[str, Any]) -> list[str]:
        """Lines printed under the terminal table (``notes``: the evaluation's notes)."""
        return []

    @classmethod
    def plot(cls, evaluation, out: Path) -> dict[str, Path]:
        """Draw this metric's plots of ``evaluation`` into the directory ``out``.

        Returns
        -------
        dict
            Plot kind (``flux``, ``fourier_r``, ...) -> path written.
        """
        return {}

    def __init__(self, context: MetricContext):
        self.context = context
        self.n_images = 0
        self._partials: list[tuple[int, dict[str, np.ndarray]]] = []
        self._lock = threading.Lock()

    @property
    def bands(self) -> tuple[str, ...]:
        return self.context.bands

    @abc.abstractmethod
    def measure(
        self, pred: np.ndarray, ref: np.ndarray, truth: np.ndarray | None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Measure one chunk (pure): ``({column: (n, C) array}, {partial name: array})``."""

    def update(
        self, pred: np.ndarray, ref: np.ndarray, truth: np.ndarray | None = None, index: int | None = None
    ) -> dict[str, np.ndarray]:
        """Measure one chunk of matched images; thread-safe.

        Parameters
        ----------
        pred, ref : ndarray, shape (n, C, H, W)
            Native flux units, C = ``len(context.bands)``.
        truth : ndarray, shape (n, C, H, W), optional
            Noise-free images (required when ``needs_truth``).
        index : int, optional
            Position of the chunk in the set (default: arrival order); set-level arrays
            that keep one entry per image follow this order.

        Returns
        -------
        dict
            ``{column name: (n, C) array}``.
        """
        self._check(pred, ref, truth)
        columns, partial = self.measure(pred, ref, truth)
        with self._lock:
            self.n_images += pred.shape[0]
            self._partials.append((len(self._partials) if index is None else index, partial))
        return columns

    def result(self) -> MetricResult:
        """Set-level results after the last chunk (default: none)."""
        return MetricResult()

    # helpers for subclasses ------------------------------------------------------------

    def _ordered(self):
        return [p for _, p in sorted(self._partials, key=lambda item: item[0])]

    def _concat(self, key: str) -> np.ndarray:
        """Partials ``key`` of every chunk, concatenated along the image axis in chunk order."""
        return np.concatenate([p[key] for p in self._ordered()])

    def _sum(self, key: str) -> np.ndarray:
        """Sum of the partials ``key`` over chunks (float64)."""
        total = None
        for p in self._ordered():
            total = p[key].astype(np.float64) if total is None else total + p[key]
        return total

    def _check(self, pred, ref, truth=None):
        if pred.shape != ref.shape:
            raise ValueError(f"{self.name}: pred shape {pred.shape} differs from ref shape {ref.shape}")
        if pred.ndim != 4 or pred.shape[1] != len(self.bands):
            raise ValueError(f"{self.name}: expected (n, {len(self.bands)}, H, W) arrays, got {pred.shape}")
        if self.needs_truth and truth is None:
            raise ValueError(f"{self.name} needs the noise-free images (truth)")
        if truth is not None and truth.shape != ref.shape:
            raise ValueError(f"{self.name}: truth shape {truth.shape} differs from ref shape {ref.shape}")

    def _per_band(self, **arrays: np.ndarray) -> dict[str, dict[str, Any]]:
        """``{band: {name: float}}`` from per-band arrays of shape (C,)."""
        out: dict[str, dict[str, Any]] = {}
        for i, band in enumerate(self.bands):
            out[band] = {k: _to_float(v[i]) for k, v in arrays.items()}
        return out


def _to_float(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
