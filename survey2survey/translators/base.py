"""The translator interface: what ``s2s translate`` needs from anything that translates a cutout.

The pipeline (:mod:`survey2survey.pipelines.translate`) finds the inputs, reads each
cutout and tells its source survey, checks existing outputs, schedules the work over
processes and writes the outputs with their provenance.  A :class:`Translator` does the
rest, in four steps with a fixed place each::

    prepare(cutout, survey) -> Prepared      worker process: checks, input array, output geometry
    run(prepared list, keys, samples)        worker process (per_cutout) or this process (batched)
    finish(prepared, data) -> native         worker process: native units on the output grid
    provenance(prepared, ...) -> cards       worker process: Provenance, HISTORY, extra keywords

A cheap translator (``per_cutout = True``, e.g. a translation by the physics of the two
surveys) runs all four steps inside the worker processes, one cutout at a time, so
that every core reads, translates and writes.  A learned model (``per_cutout = False``)
runs :meth:`Translator.run` in the main process on large batches
(:class:`~survey2survey.translators.learned.LearnedTranslator`).

A translator object is copied into the worker processes (forked, or pickled where
processes are spawned): heavy state (networks, sessions) is created by
:meth:`Translator.start`, which runs in the main process after the workers exist, and is
left out of the copy.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from survey2survey.surveys import Survey

__all__ = ["Geometry", "Prepared", "Translator", "resample_mask"]


@dataclass
class Geometry:
    """The output grid of one translated cutout.

    Attributes
    ----------
    shape : (int, int)
        (H, W) of the output image, pixels of the target survey.
    bands : tuple of str
        Output bands, in the order of the output cube.
    wcs : str or None
        Celestial WCS of the output grid as header cards
        (:func:`survey2survey.fits_io.wcs_cards`); None when the input has no WCS.
    """

    shape: tuple[int, int]
    bands: tuple[str, ...]
    wcs: str | None = None


@dataclass
class Prepared:
    """One cutout ready for :meth:`Translator.run`, made by :meth:`Translator.prepare`.

    Attributes
    ----------
    source : Survey
        The cutout's survey, as the translator knows it.
    x : ndarray or None
        What :meth:`Translator.run` reads (a learned model: (C, H, W) model space).  The
        pipeline drops it once the cutout is translated.
    geometry : Geometry
        The output grid.
    mask : ndarray of bool, optional
        Bad-pixel mask on the output grid, (bands, H, W) (:func:`resample_mask`).
    warnings : list of str
        Notes about the input, reported and written to HISTORY.
    state : object
        The translator's own (picklable) data for :meth:`Translator.finish`.
    notes : list of str
        Lines for the output's HISTORY only (how it was translated; not warnings).
    """

    source: Survey
    x: np.ndarray | None
    geometry: Geometry
    mask: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    state: Any = None
    notes: list[str] = field(default_factory=list)


class Translator(abc.ABC):
    """Translates cutouts of some source surveys into one target survey.

    Attributes
    ----------
    target : Survey
        The survey written.
    sources : dict of str to Survey
        The source surveys it translates into ``target``, by name (as it knows them:
        a model's own definitions win over the registry's).
    per_cutout : bool
        True: :meth:`run` is cheap and runs one cutout at a time in the worker
        processes; False: it runs in the main process on batches.
    partial_bands : bool
        True: a cutout is read with the bands its file has (a translator that works
        band by band); False: every band of its survey is required.
    uses_gpu : bool
        A guess, before :meth:`start`, that :meth:`run` will use a GPU (more I/O
        workers then).
    device, provider, precision : str
        Where and how :meth:`run` computes, for the run report (after :meth:`start`).
    run_notes : sequence of str
        Said once per run, in the report's notes (options a translator does not use).
    """

    target: Survey
    sources: dict[str, Survey]
    per_cutout: bool = True
    partial_bands: bool = False
    uses_gpu: bool = False
    device: str = "cpu"
    provider: str | None = None
    precision: str = "fp32"
    run_notes: tuple[str, ...] = ()

    def start(self) -> None:
        """Heavy set-up in the main process, after the worker processes started (default: none)."""

    def batch_size(self, requested: int | None, samples: int) -> int:
        """Cutouts per call of :meth:`run` (batched translators; per-cutout ones get 1)."""
        return 1

    @abc.abstractmethod
    def describe(self) -> str:
        """One line naming the translator and how it runs (``S2SBACK`` keyword, run report)."""

    def summary(self) -> str:
        """One line for the start of a run: which translator, which directions (default: :meth:`describe`)."""
        return self.describe()

    @abc.abstractmethod
    def prepare(self, cutout, survey: Survey) -> Prepared:
        """Check one cutout and turn it into the input of :meth:`run`.

        Parameters
        ----------
        cutout : survey2survey.fits_io.Cutout
            As read, native units of ``survey``.
        survey : Survey
            Its source survey (one of :attr:`sources`).

        Raises
        ------
        CutoutError
            The cutout cannot be translated (one line naming the file and the problem).
        """

    @abc.abstractmethod
    def run(self, batch: Sequence[Prepared], keys: np.ndarray, samples: int) -> Sequence[np.ndarray]:
        """Translate prepared cutouts of one source survey.

        Parameters
        ----------
        batch : sequence of Prepared
        keys : ndarray of int64, shape (N,)
            Each object's random key (:func:`survey2survey.runtime.seeds.object_seed`):
            all randomness of an object comes from it.
        samples : int
            Realisations per cutout.

        Returns
        -------
        sequence of ndarray
            One ``(S, C, H, W)`` array per cutout, in the form :meth:`finish` takes.
        """

    def finish(self, prepared: Prepared, data: np.ndarray) -> np.ndarray:
        """``run``'s output of one cutout -> ``(S, C, H, W)`` native units on the output grid (default: as is)."""
        return data

    @abc.abstractmethod
    def provenance(self, prepared: Prepared, object_id: str, seed: int, n_samples: int):
        """What the output file records about its making.

        Returns
        -------
        provenance : survey2survey.fits_io.Provenance
            The ``S2S*`` keywords (the pipeline fills in the source file).
        history : list of str
            ``HISTORY`` lines.
        cards : list of (key, value, comment)
            Further keywords.
        """


def _overlap(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) 0/1 matrix: output pixel o overlaps input pixel i (same footprint)."""
    edges_out = np.arange(n_out + 1) * (n_in / n_out)  # output pixel edges in input pixels
    lo = np.floor(edges_out[:-1] + 1e-9).astype(int)
    hi = np.ceil(edges_out[1:] - 1e-9).astype(int)
    i = np.arange(n_in)
    return ((i[None, :] >= lo[:, None]) & (i[None, :] < hi[:, None])).astype(np.float32)


def resample_mask(mask: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Bad-pixel mask (C, H, W) -> (C, H', W') on the same footprint: flagged where any bad input pixel overlaps."""
    ay = _overlap(mask.shape[1], out_shape[0])  # (H', H)
    ax = _overlap(mask.shape[2], out_shape[1])  # (W', W)
    return np.einsum("yh,chw,xw->cyx", ay, mask.astype(np.float32), ax) > 0
