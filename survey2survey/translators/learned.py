"""A trained model as a :class:`~survey2survey.translators.base.Translator`: F = G + NE per direction.

What happens to one cutout (Lin & Fouchez 2021, F = G + NE)::

    FITS (source survey, native units)
      -> to_model_space (and, for a regridded model,         prepare: worker process
         onto the grid the model was trained on)
      -> G(x) + NE(z1, z2), z from the object's key            run: this process, batches
      -> to_native (target survey), the model grid resampled
         onto the target's when it is not the target's own     finish: worker process
    FITS (target survey, native units)

The noise is formed in model space, where the emulator was trained, and converted with
the rest.  ``noise=False`` writes G(x) alone.  A model trained on the regridded set
(cyclegan, augcgan: ``"regridded"`` in config.json) works on survey a's grid, so a b
cutout is resampled onto it before the model, as ``s2s prepare --regrid`` did for
training, and an output in b is resampled from it onto b's cutout grid (flux conserved,
``S2SGRID`` keyword); a stochastic generator ``G(x, z)`` (augcgan) gets its latent code
from the object's key like the noise.
"""

from __future__ import annotations

import functools
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from survey2survey.errors import CutoutError, ModelError, SurveyError, UsageError
from survey2survey.fits_io import Provenance, flat_planes, make_wcs, rescale_wcs, wcs_cards
from survey2survey.model import (
    Direction,
    LoadedModel,
    direction_shapes,
    load_model,
    model_directions,
    physics_directions,
)
from survey2survey.physics.defects import psf_pixels, repair_sharp_pixels
from survey2survey.runtime.device import batch_size as device_batch_size
from survey2survey.runtime.device import ort_has_cuda, resolve_device
from survey2survey.surveys import Survey, find_survey, get_survey, stretch, to_model_space, to_native, unstretch
from survey2survey.translators.base import Geometry, Prepared, Translator, resample_mask

#: Largest relative difference between an input's WCS pixel scale and its survey's that a
#: model accepts (issue 15.5): a model learnt one sampling and has no notion of another.
SCALE_TOLERANCE = 0.02

__all__ = ["LearnedTranslator", "add_source_noise", "source_noise_survey"]

#: What to try when no trained model covers a pair.
_PHYSICS_HINT = "--model physics translates any pair of registry surveys, no training"


class LearnedTranslator(Translator):
    """The directions of a trained model that translate into one target survey.

    Parameters
    ----------
    model : survey2survey.model.LoadedModel
        Loaded on the CPU (the engines move it to ``device`` in :meth:`start`).
    to : str or Survey
        Target survey.
    source : str or Survey, optional
        Keep only the direction from this survey (``--from``).
    backend : {"torch", "onnx"}
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
    precision : {"auto", "fp32", "tf32", "bf16"}
        See :class:`survey2survey.runtime.engines.TorchEngine`.
    compile : bool
        ``torch.compile`` the generator (torch backend).
    noise : bool
        False: the generator's output alone.
    samples : int
        Realisations per cutout asked for (checked against what the model can draw).

    Raises
    ------
    ModelError, UsageError
        The model does not translate into ``to`` (or from ``source``), or cannot draw
        ``samples`` realisations.
    """

    per_cutout = False

    def __init__(self, model: LoadedModel, to, *, source=None, backend: str = "torch", device: str = "auto",
                 precision: str = "auto", compile: bool = False, noise: bool = True, samples: int = 1):
        self.into = _directions_into(model, get_survey(to).name, get_survey(source).name if source is not None else None)
        first = next(iter(self.into.values()))
        self.target = first.target
        self.sources = {name: d.source for name, d in self.into.items()}
        self.noise = noise
        if not noise:
            self.noise_label = "no"
        elif all(d.noise_emulator for d in self.into.values()):
            self.noise_label = "yes"
        else:
            self.noise_label = "no (model has no noise emulator)"
        if samples > 1 and not all(d.noise_emulator or d.latent_dim for d in self.into.values()):
            raise UsageError(f"--samples {samples}: the model has no noise emulator (nor latent code) to draw realisations from")
        self.backend, self.device_request, self.precision, self.compile = backend, device, precision, compile
        self.uses_gpu = device.startswith("cuda") or (backend == "onnx" and device != "cpu" and ort_has_cuda())
        self.shapes = {name: direction_shapes(model, d) for name, d in self.into.items()}  # generator (in, out) grids
        self.model_name = str(model.config.get("name") or Path(model.path).name)
        self.method = model.config.get("method")
        self.weights_sha256 = model.weights_sha256
        self.model_path = str(model.path)
        self.validity = " ".join(str(model.config.get("validity") or "").split())
        self.training_range = model.config.get("training_range") or None
        self._model: LoadedModel | None = model
        self._engines: dict = {}
        self._physics = None  # made on first use (_by_physics): a cutout the network cannot take
        # a generator on the physics runs on other cutout sizes: its physics rebuilt for them (torch)
        self._made_with = {name: _resizable(model, d) for name, d in self.into.items()}
        self._sized: OrderedDict = OrderedDict()  # (source, input shape) -> engine, most recent last (main process)
        self._batch: int | None = None  # set by batch_size()
        # a cutout with some of the bands only is read as it is, and left to the physics (prepare)
        self.partial_bands = all(s.has_physics for s in self.sources.values()) and self.target.has_physics
        # the registry's sky brightness of the target gives its sources' Poisson noise (the noise
        # emulator draws the sky's): a model recorded before the registry had it gets it too
        self._source_noise = source_noise_survey(self.target) if self.noise_label == "yes" else None

    @classmethod
    def load(cls, model_dir: str | os.PathLike, to, *, backend: str = "torch", device: str = "auto", **options) -> LearnedTranslator:
        """Load ``model_dir`` (on the CPU, up-sampling folded for inference) and wrap it.

        ``device`` ``auto`` is resolved here for the torch backend; ``options`` are those of
        the constructor.
        """
        dev = resolve_device(device) if backend == "torch" else (device or "auto").lower()
        if options.get("precision") == "tf32" and not dev.startswith("cuda"):
            raise UsageError("--precision tf32 needs a CUDA GPU (TF32 is a tensor-core format); use fp32 on the CPU")
        # On the CPU for now: the worker processes are forked before any CUDA context exists.
        return cls(load_model(model_dir, device="cpu", fold=True), to, backend=backend, device=dev, **options)

    def __getstate__(self) -> dict:
        # the worker processes prepare and finish cutouts: they need no networks
        state = dict(self.__dict__)
        state["_model"], state["_engines"], state["_sized"] = None, {}, OrderedDict()
        return state

    # --- main process ---------------------------------------------------------------
    def start(self) -> None:
        """Put the generator (and emulator) of every direction on the device: one engine each."""
        from survey2survey.runtime.engines import load_engine

        self._engines = {
            name: load_engine(self._model, d, self.backend, self.device_request, self.precision, self.compile)
            for name, d in self.into.items()
        }
        first = next(iter(self._engines.values()))
        self.device, self.provider, self.precision = str(first.device), first.provider, first.precision
        self._description = first.describe()

    def batch_size(self, requested: int | None, samples: int) -> int:
        # the device that really runs (an ONNX session may fall back to the CPU): not the guess
        self._batch = device_batch_size(requested, self.device.startswith("cuda"), samples)
        return self._batch

    def describe(self) -> str:
        """The engine: ``torch/cpu/fp32``, ``onnx/cuda/CUDAExecutionProvider``, ..."""
        return self._description

    def summary(self) -> str:
        """Model, method, directions and the model card's one-line statement of validity."""
        line = (f"translating with model {self.model_name} ({self.method or 'unknown method'}, {self.model_path}): "
                f"{', '.join(d.name for d in self.into.values())}")
        return f"{line}; {self.validity}" if self.validity else line

    def run(self, batch: Sequence[Prepared], keys: np.ndarray, samples: int) -> np.ndarray | list:
        physics = {i for i, p in enumerate(batch) if _by_physics(p)}
        if physics:  # cutouts the network cannot take, translated by the physics (prepare)
            out: list = [None] * len(batch)
            learned = [i for i in range(len(batch)) if i not in physics]
            for i in physics:
                out[i] = self._fallback().run([batch[i]], keys[i : i + 1], samples)[0]
            if learned:
                for i, data in zip(learned, self.run([batch[i] for i in learned], keys[learned], samples)):
                    out[i] = data
            return out
        name, shape = batch[0].source.name, tuple(batch[0].x.shape[1:])  # (H, W)
        at_once = self._at_once(name, shape, len(batch))
        parts = _parts(batch, at_once)
        if len(parts) > 1:  # several sizes (one call each), or large cutouts (a batch's pixels at a time)
            out = [None] * len(batch)
            for part in parts:
                for i, data in zip(part, self.run([batch[i] for i in part], keys[part], samples)):
                    out[i] = data
            return out
        engine = self._engine(name, shape)
        x = np.stack([p.x for p in batch])  # (N, C, H, W) model space
        # a compiled generator runs one batch size: a large cutout's part is padded to its own size
        pad = min(self._batch or len(batch), at_once) if self.compile and self.backend == "torch" else None
        out = engine.run(x, keys, samples, self.noise, pad)  # (N, S, C, H, W) model space
        if self._source_noise is not None and self.into[batch[0].source.name].target_grid is None:
            out = add_source_noise(out, keys, self.target, self._source_noise)
        return out

    def _at_once(self, name: str, shape, n: int) -> int:
        """How many cutouts of ``shape`` (H, W) go through the network at a time: as many pixels as
        a batch of the model's own size (memory)."""
        return max(1, (self._batch or n) * int(np.prod(self.shapes[name][0])) // int(np.prod(shape)))

    def _engine(self, name: str, shape):
        """The engine of direction ``name`` for inputs of ``shape`` (H, W): the model's own, or
        one resized for it (:meth:`TorchEngine.resized`, the last :data:`SIZES_KEPT` kept)."""
        engine = self._engines[name]
        shape = tuple(int(n) for n in shape)
        if shape == tuple(engine.in_shape):
            return engine
        key = (name, shape)
        if key in self._sized:
            self._sized.move_to_end(key)
        else:
            if len(self._sized) >= SIZES_KEPT:
                self._sized.popitem(last=False)  # the least recently used
            source = get_survey(self.sources[name].name)
            try:
                self._sized[key] = engine.resized(shape, _network_out_shape(source, get_survey(self.target.name), shape))
            except ValueError as exc:  # prepare() checked what it could: a registry changed under the model
                raise ModelError(f"{self.model_path}: cannot run on {shape[1]}x{shape[0]} px {source.name} cutouts: {exc}") from None
        return self._sized[key]

    def _fallback(self):
        """The physics translator into the target, for cutouts the network cannot take."""
        if self._physics is None:
            from survey2survey.translators.physics import SurveyPhysicsTranslator

            self._physics = SurveyPhysicsTranslator(self.target, noise=self.noise)
        return self._physics

    def _prepare_by_physics(self, cutout, survey: Survey, why: CutoutError) -> Prepared:
        """``cutout`` prepared for the physics translation, or ``why`` raised where the physics cannot do it."""
        from survey2survey.errors import S2SError

        if not (survey.has_physics and self.target.has_physics):
            raise why
        try:
            prepared = self._fallback().prepare(cutout, survey)
        except S2SError:
            raise why from None
        prepared.state["by_physics"] = why.reason
        prepared.warnings.append(f"translated by the physics instead of the network: {why.reason}")
        return prepared

    # --- worker processes -------------------------------------------------------------
    def prepare(self, cutout, survey: Survey) -> Prepared:
        name, path = survey.name, cutout.path
        d = self.into[name]
        if tuple(cutout.bands) != tuple(survey.bands):
            if set(cutout.bands) < set(survey.bands):  # some of its bands: the physics, band by band
                missing = [b for b in survey.bands if b not in cutout.bands]
                return self._prepare_by_physics(cutout, survey, CutoutError(
                    path, f"missing band(s) {','.join(missing)}: the model takes {name}'s bands {','.join(survey.bands)}"))
            raise CutoutError(path, f"bands {','.join(cutout.bands)} do not match the model's {name} bands {','.join(survey.bands)}")
        scale = cutout.pixel_scale
        if scale is not None and abs(scale - survey.pixel_scale) > SCALE_TOLERANCE * survey.pixel_scale:
            # a model learnt the survey's sampling: other pixels would be translated as if they were its own
            # (and are likely another survey's: not left to the physics under this survey's name either)
            raise CutoutError(
                path, f"pixel scale {scale:.4g}\"/px (WCS) is not {name}'s {survey.pixel_scale:.4g}\"/px "
                f"(more than {SCALE_TOLERANCE:.0%} off): the model takes {name} pixels; resample the cutout first",
            )
        in_shape, out_shape = self.shapes[name]  # the generator's grids
        notes: list[str] = []
        # a regridded model reads the survey's own cutouts and resamples them itself
        want = (survey.cutout_size, survey.cutout_size) if d.source_grid is not None else in_shape
        if tuple(cutout.data.shape[1:]) != tuple(want):  # another cutout size: the network resized, or the physics
            other = tuple(cutout.data.shape[1:])
            why = self._other_size(name, survey, other, want)
            if why is not None:
                return self._prepare_by_physics(cutout, survey, CutoutError(path, why))
            in_shape, out_shape = other, _network_out_shape(get_survey(name), get_survey(self.target.name), other)
            notes.append(f"network run on this {other[1]}x{other[0]} px cutout (the model's own: {want[1]}x{want[0]} px): "
                         "its physics operator and photometry anchor built for it from the registry, its "
                         "convolutional correction unchanged")
        # a band with no image (padding, no coverage): the network would paint one there from the
        # other bands, and let the empty band move theirs; the physics keeps every band its own
        flat = [b for b, empty in zip(survey.bands, flat_planes(cutout.data)) if empty]
        if flat and self.partial_bands:  # (the surveys have physics; else the network, with the reader's warning)
            return self._prepare_by_physics(cutout, survey, CutoutError(
                path, f"band(s) {','.join(flat)} hold no image (all zero or constant): the network mixes the bands"
            ))
        # a cosmic ray or hot pixel: the network would paint it into the other bands
        data, repaired = repair_sharp_pixels(cutout.data, psf_pixels(survey))
        wcs = cutout.wcs
        if d.source_grid is not None:
            from survey2survey.data.regrid import regrid_to_survey

            # onto the grid the model was trained on, as `s2s prepare --regrid` does (flux conserved)
            data, grid_wcs = regrid_to_survey(data, survey, d.source_grid, cutout.wcs, return_wcs=True)
            wcs = grid_wcs if cutout.wcs is not None else None
        grid_shape = data.shape[1:]
        final_shape = (self.target.cutout_size,) * 2 if d.target_grid is not None else out_shape
        resample = None
        if d.target_grid is not None:
            # the model's output lies on target_grid's grid: resampled onto the target's in finish()
            # (a stand-in WCS when the input has none: only the resampling needs one)
            base = wcs if wcs is not None else make_wcs(0.0, 0.0, d.target_grid.pixel_scale, grid_shape)
            resample = (
                rescale_wcs(base, grid_shape, out_shape).to_header_string(relax=True),
                rescale_wcs(base, grid_shape, final_shape).to_header_string(relax=True),
                final_shape,
            )
        # the network's output pixels are the target survey's (its training pairs were cut at
        # each survey's own scale about the same centre), not the input's footprint re-divided
        scale = None if d.target_grid is not None else self.target.pixel_scale / (d.source_grid or survey).pixel_scale
        geometry = Geometry(
            final_shape, self.target.bands,
            wcs_cards(rescale_wcs(wcs, grid_shape, final_shape, scale=scale)) if wcs is not None else None
        )
        mask = resample_mask(cutout.mask, final_shape) if cutout.mask is not None else None
        warnings = list(cutout.warnings)
        if repaired.any():
            bands = ", ".join(f"{b} {n}" for b, n in zip(survey.bands, repaired) if n)
            warnings.append(f"{int(repaired.sum())} pixel(s) sharper than the PSF (a cosmic ray or hot pixel: {bands}) "
                            "set to their neighbours' median before the network")
        if self.training_range:  # measured as on the model's own cutouts: the centre of a larger one
            warnings += range_warnings(_central(cutout.data, want), survey, self.training_range)
        return Prepared(survey, to_model_space(data, survey), geometry, mask, warnings, resample, notes)

    def _other_size(self, name: str, survey: Survey, shape: tuple[int, int], want) -> str | None:
        """Why the network cannot take a cutout of ``shape`` (H, W) instead of its ``want``, or None."""
        (h, w), made_with = shape, self._made_with[name]
        wrong = f"wrong size {w}x{h} px, the model takes {want[1]}x{want[0]} px {name} cutouts"
        if made_with is None:
            return wrong
        if self.backend != "torch":
            return f"{wrong} on --backend {self.backend} (--backend torch runs its network on other sizes)"
        if max(h, w) > MAX_SIDE:
            return f"{w}x{h} px: the network runs on cutouts up to {MAX_SIDE} px a side"
        source, target = get_survey(name), get_survey(self.target.name)  # (the registry's now)
        out = _network_out_shape(source, target, shape)
        smallest = _smallest_side(source, target, made_with["anchor"])
        if min(h, w) < smallest or not _fits(target, out, made_with["anchor"]):
            why = "the network's 4\" photometry ring" if made_with["anchor"] else "the network"
            return f"{w}x{h} px is too small for {why} (at least {smallest} px on each side)"
        changed = _registry_mismatch(json.dumps(made_with["physics"], sort_keys=True), source, target)
        if changed:
            return f"{wrong}: {changed}"
        return None

    def finish(self, prepared: Prepared, data: np.ndarray) -> np.ndarray:
        if _by_physics(prepared):
            return data  # the physics writes native units on the output grid
        native = to_native(data, self.target)  # (S, C, H, W) float32, target's native units
        if prepared.state is None or not np.isfinite(native).all():
            return native
        from astropy.io import fits
        from astropy.wcs import WCS

        from survey2survey.data.regrid import regrid

        # flux per model-grid pixel -> flux per target pixel (flux conserved)
        grid_header, out_header, shape = prepared.state
        grid_wcs, out_wcs = WCS(fits.Header.fromstring(grid_header)), WCS(fits.Header.fromstring(out_header))
        return np.stack([regrid(sample, grid_wcs, out_wcs, shape) for sample in native])  # (S, C, H', W')

    def provenance(self, prepared: Prepared, object_id: str, seed: int, n_samples: int):
        if _by_physics(prepared):
            prov, history, cards = self._fallback().provenance(prepared, object_id, seed, n_samples)
            why = prepared.state["by_physics"]
            return prov, [f"by the physics, not model {self.model_name}: {why}", *history], cards
        d, target = self.into[prepared.source.name], self.target
        prov = Provenance(
            model=self.model_name, model_sha256=self.weights_sha256, method=self.method, direction=d.name,
            source_survey=d.source.name, target_survey=target.name, seed=int(seed), backend=self.describe(),
            noise=self.noise_label,
        )
        history = [f"s2s translate {d.name} with model {self.model_name} ({self.method or 'unknown method'}), {self.describe()}"]
        if self.noise_label == "yes":
            history.append(
                f"F = G + NE in model space, noise from seed {seed} and object id {object_id!r}, then "
                f"converted to {target.name} native units ({n_samples} realisation(s))"
            )
            if self._source_noise is not None and d.target_grid is None:
                where = "the registry" if self._source_noise is not target else "the model's config.json"
                history.append(f"plus the sources' Poisson noise, from {target.name}'s sky brightness in {where}")
        elif d.latent_dim:
            history.append(
                f"G(x, z) with latent code z ~ N(0, I) ({d.latent_dim}-d) from seed {seed} and object id "
                f"{object_id!r} ({n_samples} draw(s)), converted to {target.name} native units"
            )
        else:
            history.append(f"generator output without noise, converted to {target.name} native units")
        history += _grid_history(d, target)
        history += prepared.notes
        drawn = self.noise_label == "yes" or d.latent_dim
        cards = [("S2SNSAMP", int(n_samples) if drawn else 0, "realisations in this file (noise or latent draws)")]
        grid = d.source_grid or d.target_grid
        if grid is not None:
            cards.append(("S2SGRID", grid.name, "the model ran on this survey's pixel grid"))
        if self.provider:
            cards.append(("S2SPROV", self.provider, "ONNX Runtime execution provider"))
        return prov, history, cards


#: The sources' Poisson noise has its own random streams: the noise emulator's are
#: ``sample * MAX_BANDS + band`` (:func:`survey2survey.runtime.seeds.noise_inputs`).
SOURCE_NOISE_STREAM = 1 << 30


def source_noise_survey(target: Survey) -> Survey | None:
    """The survey whose sky brightness and sky noise give ``target``'s sources' Poisson noise.

    The registry's survey of that name when the registry has one (the user's ``--surveys`` file
    or the built-in: its physics, with or without ``sky_brightness``, is what translations
    follow; a model recorded before the key gets it too), else the model's own ``target``;
    None when that gives no sky brightness and sky sigma for every band.
    """
    survey = find_survey(target.name) or target  # else a survey only the model describes
    if not survey.sky_brightness:
        return None
    try:
        for band in target.bands:
            survey.sky_surface_flux(band), survey.typical_sky_sigma(band)
    except SurveyError:  # a band it lacks, or no sky_sigma / depth (a noise model only)
        return None
    return survey


def add_source_noise(out: np.ndarray, keys, target: Survey, sky: Survey) -> np.ndarray:
    """F = G + NE (model space, (N, S, C, H, W)) with the target's sources' Poisson noise added.

    The noise emulator draws the sky's noise; a source adds variance sigma_sky^2 S / S_sky
    (:func:`~survey2survey.physics.noise.source_variance_ratio`), S read from F itself above
    :data:`~survey2survey.physics.noise.SOURCE_FLOOR_SIGMA` sky sigmas (ramping up to 1.5
    times that).  Each pixel's normal number is a pure function of (object key, sample, band,
    pixel) (:func:`survey2survey.runtime.seeds.standard_normal`, streams from
    :data:`SOURCE_NOISE_STREAM`), smoothed by ``sky``'s ``[c, 1, c]`` pixel correlation: the
    same in any batch, backend or device, up to F's own rounding.
    """
    from survey2survey.physics.noise import SOURCE_FLOOR_SIGMA, correlate_white, source_variance_ratio
    from survey2survey.runtime.seeds import MAX_BANDS, standard_normal

    out = np.array(out, dtype=np.float32)  # the sky's pixels stay bit for bit
    n, n_samples, n_bands, h, w = out.shape
    streams = [SOURCE_NOISE_STREAM + s * MAX_BANDS + b for s in range(n_samples) for b in range(n_bands)]
    z = standard_normal(np.asarray(keys, dtype=np.int64), (h + 2) * (w + 2), streams).numpy()
    z = correlate_white(z.reshape(n, n_samples, n_bands, h + 2, w + 2), sky.noise_correlation or 0.0)
    for b, band in enumerate(target.bands):
        sigma = sky.typical_sky_sigma(band) * sky.flux_factor / target.flux_factor  # target native units
        native = unstretch(out[:, :, b].astype(np.float64)) / target.flux_factor
        ratio = source_variance_ratio(native, target, band, sky, band, floor=SOURCE_FLOOR_SIGMA * sigma)
        where = ratio > 0
        noisy = native[where] + sigma * np.sqrt(ratio[where]) * z[:, :, b][where]
        out[:, :, b][where] = stretch(noisy * target.flux_factor)  # a view: written into out
    return out


#: Largest side (pixels) of a cutout the network runs on: a larger one goes to the physics (building
#: the physics operator and anchor for 256 px takes 2.4 s and 0.7 GB; for 512 px 8.5 s and 1.9 GB).
MAX_SIDE = 256
#: Smallest output side of a network without the anchor (its dilated convolutions pad by reflection).
MIN_OUT_SIDE = 32
#: Cutout sizes other than a model's own kept ready at once (each holds its physics operator).
SIZES_KEPT = 8


def _resizable(model: LoadedModel, d: Direction) -> dict | None:
    """What a generator on the physics was made with (``physics``: its description, ``anchor``),
    or None for a generator that runs on its own cutout size only."""
    generator = model.modules[d.generator]
    if d.source_grid is not None or d.target_grid is not None or not hasattr(generator, "resized"):
        return None
    if not (d.source.has_physics and d.target.has_physics):
        return None
    return {"physics": generator.init_kwargs.get("physics") or {}, "anchor": getattr(generator, "anchor", None) is not None}


# The caches below are keyed on the registry's Survey objects, not their names: a survey
# registered again (--surveys, $S2S_SURVEYS) is another object.


@functools.lru_cache(maxsize=64)
def _network_out_shape(source: Survey, target: Survey, shape: tuple[int, int]) -> tuple[int, int]:
    """The output grid of the network on a ``shape`` cutout of ``source``: the physics's (same
    footprint to the nearest target pixel at the registry's scales), as on the model's own size."""
    from survey2survey.physics.translator import PhysicsTranslator

    return tuple(PhysicsTranslator(source, target).output_geometry(tuple(shape))[0])


def _fits(target: Survey, out_shape: tuple[int, int], anchor: bool) -> bool:
    """Whether the network's output grid holds its anchor's ring (or, without one, its convolutions)."""
    if not anchor:
        return min(out_shape) >= MIN_OUT_SIDE
    from survey2survey.nets.anchor import PhotometryAnchor

    return PhotometryAnchor.fits(target, out_shape)


@functools.lru_cache(maxsize=16)
def _smallest_side(source: Survey, target: Survey, anchor: bool) -> int:
    """The smallest square cutout of ``source`` whose network output :func:`_fits`."""
    return next((n for n in range(1, MAX_SIDE + 1) if _fits(target, _network_out_shape(source, target, (n, n)), anchor)),
                MAX_SIDE + 1)


@functools.lru_cache(maxsize=16)
def _registry_mismatch(described: str, source: Survey, target: Survey) -> str | None:
    """:func:`~survey2survey.nets.residual.registry_mismatch` of a generator's physics
    description (JSON), cached for the registry's ``source`` and ``target`` of the moment."""
    from survey2survey.nets.residual import registry_mismatch

    return registry_mismatch(json.loads(described))


def _parts(batch: Sequence[Prepared], at_once: int) -> list[list[int]]:
    """The batch's indices by input size, each size cut into runs of ``at_once`` when there is one
    size (a run of another size gets its own ``at_once`` when it comes)."""
    groups: dict = {}
    for i, p in enumerate(batch):
        groups.setdefault(p.x.shape, []).append(i)
    if len(groups) > 1:
        return list(groups.values())
    return [list(range(k, min(k + at_once, len(batch)))) for k in range(0, len(batch), at_once)]


def _central(data: np.ndarray, shape) -> np.ndarray:
    """The central ``shape`` (H, W) of ``data`` (..., H', W') where it is larger."""
    h, w = data.shape[-2:]
    top, left = max(0, (h - shape[0]) // 2), max(0, (w - shape[1]) // 2)
    return data[..., top : top + min(h, shape[0]), left : left + min(w, shape[1])]


def _by_physics(prepared: Prepared) -> bool:
    """Whether ``prepared`` is a cutout the network could not take, to be translated by the physics."""
    return isinstance(prepared.state, dict) and "by_physics" in prepared.state


def _grid_history(d: Direction, target: Survey) -> list[str]:
    """HISTORY lines of a regridded model's resampling steps."""
    grid = d.source_grid or d.target_grid
    lines = []
    if d.source_grid is not None:
        lines.append(
            f"input resampled onto the {grid.name} grid ({grid.cutout_size} px x {grid.pixel_scale}\") the model "
            "was trained on (reproject_adaptive, flux conserved)"
        )
    if d.target_grid is not None:
        lines.append(
            f"model output on the {grid.name} grid ({grid.cutout_size} px x {grid.pixel_scale}\") resampled "
            f"onto {target.cutout_size} px (reproject_adaptive, flux conserved): "
            f"its resolution is the {grid.name} grid's"
        )
    return lines


def _directions_into(model: LoadedModel, target_name: str, given_name: str | None) -> dict[str, Direction]:
    """The model's directions into ``target_name`` by source survey name (only ``given_name``'s if given)."""
    directions = model_directions(model.config)
    into = {d.source.name: d for d in directions.values() if d.target.name == target_name}
    if not into:
        have = ", ".join(list(directions) + [f"{d} by the physics" for d in physics_directions(model.config)]) or "none"
        if len(directions) == 1 and next(iter(directions.values())).source.name == target_name:
            raise ModelError(
                f"{model.path}: a one-way model ({model.config.get('method') or 'unknown method'}) that translates "
                f"{have} only, not into {target_name} (train one with --direction {have.split('->')[1]}->{target_name})"
            )
        what = f"{given_name}->{target_name}" if given_name is not None else f"into {target_name}"
        raise ModelError(f"{model.path}: the model does not translate {what} (its directions: {have}); {_PHYSICS_HINT}")
    if given_name is not None:
        if given_name == target_name:
            raise UsageError(f"--from and --to are both {target_name}")
        if given_name not in into:
            raise ModelError(
                f"{model.path}: the model does not translate {given_name}->{target_name} "
                f"(its directions: {', '.join(directions)}); {_PHYSICS_HINT}"
            )
        into = {given_name: into[given_name]}
    return into


#: Start of the warning for an input unlike the model's training set (``s2s translate`` sums them up).
OUT_OF_RANGE = "outside the model's training range"
#: Slack on the training range's magnitudes before an input is called outside it.
_MAG_SLACK = 0.5


def _median_half_light(image: np.ndarray, sigma: float) -> tuple[float, float]:
    """(radius in pixels holding half the light, that light) of the azimuthal median profile of a
    sky-subtracted ``image`` about its centre, out to 0.45 x its side or the first ring (past the
    centre) no brighter than twice its median's noise (``sigma``: the pixels' noise): further out
    a bright star's wings would count as the galaxy's."""
    order, bounds = _rings(image.shape)
    values = image.ravel()[order]
    counts = np.diff(bounds)
    medians = np.array([np.median(values[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    faint = np.flatnonzero(medians[1:] < 2 * 1.253 * sigma / np.sqrt(counts[1:]))
    growth = np.cumsum((medians * counts)[: faint[0] + 1 if faint.size else None])
    if not growth[-1] > 0:
        return 0.0, 0.0
    return float(np.searchsorted(growth, growth[-1] / 2)) + 0.5, float(growth[-1])


@functools.lru_cache(maxsize=8)
def _rings(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(pixel order by 1-pixel ring about the centre, the rings' bounds in it), rings out to 0.45 x the side."""
    h, w = shape
    yy, xx = np.indices(shape)
    rings = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2).astype(int).ravel()
    inside = np.flatnonzero(rings < int(0.45 * min(h, w)))
    order = inside[np.argsort(rings[inside], kind="stable")]
    return order, np.searchsorted(rings[order], np.arange(int(0.45 * min(h, w)) + 1))


@functools.lru_cache(maxsize=8)
def _disk_half_light(shape: tuple[int, int], half_light_px: float) -> float:
    """:func:`_median_half_light` of a noise-free round exponential disk of that half-light radius
    on the centre of a cutout of ``shape``: what the cutout lets the measure say of such a disk."""
    yy, xx = np.indices(shape)
    r = np.hypot(yy - (shape[0] - 1) / 2, xx - (shape[1] - 1) / 2)
    return _median_half_light(np.exp(-1.678 * r / half_light_px), 0.0)[0]


def range_warnings(data: np.ndarray, survey: Survey, training_range: dict) -> list[str]:
    """A warning when the central object is brighter, fainter or larger than the training set's.

    ``training_range`` (config.json): ``{"band": "r", "mag": [lo, hi], "half_light_radius": [lo, hi]}``
    (AB magnitudes, arcsec).  Measured on the cutout: the band's flux above the border's
    median sky in a circle of 0.45 x the cutout's side around the centre, said out of range
    only when it is so by more than twice its noise (the border's sigma over the circle's
    pixels: a faint galaxy's sum is noisy), and the radius holding half of the light of the
    azimuthal median profile out to where it meets the noise (a star or neighbour off the
    centre takes a small part of each ring, and does not make the galaxy large), where that
    light is 5 sigma, against the same measure of an exponential disk 1.25x the training
    set's largest (the cutout holds only part of a large galaxy: the radius is measured
    within it, both ways).
    """
    band = str(training_range.get("band", "r"))
    lowered = [b.lower() for b in survey.bands]
    if band.lower() not in lowered or data.ndim != 3:
        return []
    image = np.nan_to_num(np.asarray(data[lowered.index(band.lower())], np.float64)) * survey.flux_factor
    h, w = image.shape
    border = np.concatenate([image[:4].ravel(), image[-4:].ravel(), image[:, :4].ravel(), image[:, -4:].ravel()])
    sky = np.median(border)
    image = image - sky
    sigma = 1.4826 * float(np.median(np.abs(border - sky)))
    yy, xx = np.indices(image.shape)
    r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
    inside = r <= 0.45 * min(h, w)
    total = float(image[inside].sum())
    if not total > 0:
        return []
    noise = 2.0 * sigma * np.sqrt(inside.sum())  # twice the sum's noise (white: correlated noise is more)

    def mag_of(flux: float) -> float:
        return 22.5 - 2.5 * np.log10(flux) if flux > 0 else np.inf

    mag = mag_of(total)
    lo, hi = training_range.get("mag", (None, None))
    problems = []
    if lo is not None and mag_of(total - noise) < lo - _MAG_SLACK:
        problems.append(f"{band} = {mag:.1f} mag, brighter than the training set's {lo:g}")
    if hi is not None and mag_of(total + noise) > hi + _MAG_SLACK:
        problems.append(f"{band} = {mag:.1f} mag, fainter than the training set's {hi:g}")
    r_hi = (training_range.get("half_light_radius") or (None, None))[1]
    if r_hi is not None:
        hlr, light = _median_half_light(image, sigma)
        limit = _disk_half_light(image.shape, 1.25 * r_hi / survey.pixel_scale)
        if light > 2.5 * noise and hlr > limit:  # a size only for a galaxy of 5 sigma in the rings' medians
            problems.append(f"half-light radius {hlr * survey.pixel_scale:.1f}\" within the cutout, more than a "
                            f"{1.25 * r_hi:g}\" disk's {limit * survey.pixel_scale:.1f}\" (the training set's "
                            f"largest: {r_hi:g}\")")
    return [f"{OUT_OF_RANGE}: " + "; ".join(problems)] if problems else []
