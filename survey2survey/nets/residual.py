"""Generators that start from the physics: G(x) = P(x) + R(x), flux-conserving by construction.

``P`` is the physics translation of :mod:`survey2survey.physics` (PSF matching where the
target is broader, flux-conserving resampling onto the target grid) written as a fixed
linear map of the flux (:class:`PhysicsOperator`); ``R`` is a small convolutional network
on the target grid that learns what the physics cannot (sharper cores and texture, the
noise the input carried).  For any weights:

* at initialisation ``R = 0`` (its last convolution starts at zero), so the generator *is*
  the noise-free physics translation (with the anchor: its 2" flux moved to the estimate);
* ``R``'s flux sums to zero in every band of every image: the network may move flux (from
  the wings into a sharper core) but never create or lose it, so the total flux is the
  physics translation's (flux-conserving to the float32 rounding);
* the convolutions pad by reflection, so the border gets no frame from zero padding;
* with ``anchor=True`` the flux in a 2" circle on the cutout's centre is the physics's linear
  estimate of the target's (:mod:`survey2survey.nets.anchor`), moved from or to the ring out to
  4", where the object is bright enough for the estimate to be more than noise;
* with ``repair``, at inference, the peaks narrower than the target's PSF (specks: SDSS noise
  spikes that R left) are taken away before the anchor, filled in from the pixels around them,
  their light spread over the image (:mod:`survey2survey.nets.repair`): the flux stays P's;
  with its ``lift``, after the anchor, the pixels darker than the sky by more than ``lift`` sky
  sigma (the rings about stars and cores R over-sharpens) are raised to it, their light taken
  from the bright pixels near them: the flux stays P's.

Model space is the Lin & Fouchez (2021) stretch of the common flux scale
(:func:`survey2survey.surveys.stretch`); the generator takes and returns model-space
images like the paper's, and does its physics in flux.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from survey2survey.nets.anchor import PhotometryAnchor
from survey2survey.nets.layers import LEAKY_SLOPE, check_bands, check_input, to_pair
from survey2survey.nets.noise_emulator import KERNEL_SIZE, NoiseEmulator
from survey2survey.nets.repair import SpeckRepair, repair_config
from survey2survey.nets.sky import frame_sky
from survey2survey.surveys import get_survey, stretch, unstretch

__all__ = ["PhysicsOperator", "PhysicsResidualGenerator", "physics_operator", "physics_noise_emulator", "registry_mismatch",
           "model_space_sky_sigma", "registry_sky_flux", "conserve_flux", "CORRECTIONS"]

#: The ways a correction is made flux-conserving (:class:`PhysicsResidualGenerator` ``correction``).
CORRECTIONS = ("object", "frame")
#: SVD components of a matching kernel below this fraction of the first are dropped
#: (the kernels are round: 5 components reach 2e-5, far below any noise).
_SVD_TOLERANCE = 1e-5


class PhysicsOperator(nn.Module):
    """The noise-free physics translation of each band as ``sum_r My[b, r] @ x @ Mx[b, r].T``.

    A separable PSF-matching kernel would be one term; the round matching kernels are
    written as a short sum of separable terms (their singular value decomposition), each
    1-D factor applied with mirrored edges as the physics translator does, then
    resampled.  The matrices are persistent buffers: a saved model carries its physics and
    needs neither GalSim nor the registry to run.

    Parameters
    ----------
    bands : int
    in_size, out_size : int or (int, int)
        Input and output grids (pixels).
    rank : int
        Separable terms per band.
    """

    def __init__(self, bands: int = 5, in_size=64, out_size=136, rank: int = 1):
        super().__init__()
        self.bands = check_bands(bands, "PhysicsOperator")
        (h, w), (ho, wo) = to_pair(in_size, "in_size"), to_pair(out_size, "out_size")
        self.in_size, self.out_size, self.rank = (h, w), (ho, wo), int(rank)
        self.register_buffer("my", torch.zeros(self.bands, self.rank, ho, h))
        self.register_buffer("mx", torch.zeros(self.bands, self.rank, wo, w))

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        """``(N, bands, H, W)`` flux -> ``(N, bands, Ho, Wo)`` flux."""
        rows = torch.einsum("brih,nbhw->nbriw", self.my.to(flux.dtype), flux)
        return torch.einsum("nbriw,brjw->nbij", rows, self.mx.to(flux.dtype))

    def set_operator(self, my: np.ndarray, mx: np.ndarray) -> None:
        """Fill the buffers from arrays ``(bands, rank, Ho, H)`` and ``(bands, rank, Wo, W)``."""
        with torch.no_grad():
            self.my.copy_(torch.as_tensor(my, dtype=torch.float32))
            self.mx.copy_(torch.as_tensor(mx, dtype=torch.float32))


def _mirror_conv_matrix(taps: np.ndarray, n: int) -> np.ndarray:
    """``C`` (n, n): 1-D correlation with ``taps`` (odd length), image mirrored about its edges."""
    r = len(taps) // 2
    c = np.zeros((n, n))
    i = np.arange(n)
    for t, value in enumerate(taps):
        j = i + t - r
        j = np.where(j < 0, -j - 1, j)  # half-sample symmetric, as np.pad(mode="symmetric")
        j = np.where(j >= n, 2 * n - 1 - j, j)
        j = np.clip(j, 0, n - 1)  # a kernel wider than the image: clamp (never for survey cutouts)
        np.add.at(c, (i, j), value)
    return c


def physics_operator(source, target, bands: int, in_size, out_size=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The matrices of :class:`PhysicsOperator` for ``source`` -> ``target`` at the registry's typical seeing.

    The output grid is ``out_size`` (default: the input's footprint at the target's pixel
    scale), centred on the input's centre.

    Returns
    -------
    (my, mx, description)
        ``my`` (bands, rank, Ho, H), ``mx`` (bands, rank, Wo, W) float64, and a JSON-able
        description of the physics (PSFs, resampling) for the model's config.
    """
    from survey2survey.physics.translator import PhysicsTranslator

    translator = PhysicsTranslator(source, target)
    h, w = to_pair(in_size, "in_size")
    out_shape = to_pair(out_size, "out_size") if out_size is not None else None
    ops = translator.linear_operator((h, w), list(translator.source.bands)[:bands], out_shape=out_shape)
    terms = []
    for op in ops:
        k = op["kernel"]
        if k is None:
            terms.append([(np.eye(h), np.eye(w))])
            continue
        u, s, vt = np.linalg.svd(np.asarray(k, np.float64))
        keep = [r for r in range(len(s)) if s[r] >= _SVD_TOLERANCE * s[0]]
        terms.append([(_mirror_conv_matrix(np.sqrt(s[r]) * u[:, r], h), _mirror_conv_matrix(np.sqrt(s[r]) * vt[r], w))
                      for r in keep])
    rank = max(len(t) for t in terms)
    wy, wx = ops[0]["wy"], ops[0]["wx"]
    my = np.zeros((len(ops), rank, wy.shape[0], h))
    mx = np.zeros((len(ops), rank, wx.shape[0], w))
    for b, band_terms in enumerate(terms):
        for r, (cy, cx) in enumerate(band_terms):
            my[b, r], mx[b, r] = wy @ cy, wx @ cx
    description = {
        "source": translator.source.name, "target": translator.target.name,
        "pixel_scale_in": translator.source.pixel_scale, "pixel_scale_out": translator.target.pixel_scale,
        "per_band": {op["band_out"]: {k: op["info"][k] for k in ("fwhm_in", "fwhm_out", "psf_matched")} for op in ops},
    }
    return my, mx, description


class PhysicsResidualGenerator(nn.Module):
    """G(x) = P(x) + R(x) in flux; model space in and out (see the module docstring).

    R: a 5x5 convolution to ``width`` channels, one 3x3 convolution per entry of
    ``dilations`` (dilated: a receptive field of tens of pixels at few operations), and a
    3x3 convolution back to ``bands``, LeakyReLU(0.2) between, reflection padding.  Its
    output ``r`` is a model-space correction, turned into flux with the stretch's slope at
    the physics image (``dF = 2 (1 + |s|) ds``), then made flux-conserving and pedestal-free
    as ``correction`` says (:func:`_object_and_sky`, :func:`_frame_and_object`), so every
    band keeps its flux.

    Parameters
    ----------
    bands : int
    in_size, out_size : int or (int, int)
    rank : int
        Separable terms of the physics operator (:func:`physics_operator`).
    width : int
        Channels of R's hidden layers.
    dilations : sequence of int
        Dilation of each hidden 3x3 convolution.
    physics : dict, optional
        Description of the physics (config only; the operator is in the buffers).
    correction : {"object", "frame"}
        How the correction keeps the flux and the sky level: ``"object"`` the object and the
        sky each their own (new models), ``"frame"`` the frame's mean and the total (the
        first models, and the default of a saved model that does not say).
    anchor : bool
        Hold the 2" aperture flux of the result to the physics's linear estimate
        (:class:`~survey2survey.nets.anchor.PhotometryAnchor`, filled by :meth:`from_surveys`).
    repair : dict or bool, optional
        Take away the specks narrower than the target's PSF before the anchor, and lift the dark
        pixels after it, at inference (in eval mode: training sees them)
        (:class:`~survey2survey.nets.repair.SpeckRepair`): its config
        (:func:`~survey2survey.nets.repair.repair_config`), or True to take it from the registry.
    """

    def __init__(self, bands: int = 5, in_size=64, out_size=136, rank: int = 1, width: int = 16,
                 dilations=(1, 2, 4, 8), physics: dict | None = None, correction: str = "frame",
                 anchor: bool = False, repair: dict | bool | None = None):
        super().__init__()
        bands = check_bands(bands, "PhysicsResidualGenerator")
        self.bands = bands
        self.in_size, self.out_size = to_pair(in_size, "in_size"), to_pair(out_size, "out_size")
        dilations = [int(d) for d in dilations]
        if correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, not {correction!r}")
        self.correction = correction
        self.init_kwargs = {"bands": bands, "in_size": in_size, "out_size": out_size, "rank": int(rank),
                            "width": int(width), "dilations": dilations, "physics": dict(physics or {})}
        if correction != "frame":  # a model saved before the choice existed rebuilds as "frame"
            self.init_kwargs["correction"] = correction
        if anchor:  # models saved without one rebuild without one
            self.init_kwargs["anchor"] = True
        if repair is True:  # the target's PSF from the registry
            repair = repair_config(get_survey((physics or {}).get("target")), bands)
        self.repair = SpeckRepair.from_config(repair) if repair else None
        if repair:  # (its kernels are computed from this, not saved)
            self.init_kwargs["repair"] = dict(repair)
        self.registry_sigma = _registry_sigma((physics or {}).get("target"), bands)
        self.physics = PhysicsOperator(bands, in_size, out_size, rank)
        self.anchor = PhotometryAnchor(bands, out_size) if anchor else None
        layers: list[nn.Module] = [nn.Conv2d(bands, width, 5, padding=2, padding_mode="reflect")]
        for d in dilations:
            layers += [nn.LeakyReLU(LEAKY_SLOPE), nn.Conv2d(width, width, 3, padding=d, dilation=d, padding_mode="reflect")]
        layers += [nn.LeakyReLU(LEAKY_SLOPE), nn.Conv2d(width, bands, 3, padding=1, padding_mode="reflect")]
        self.residual = nn.Sequential(*layers)
        nn.init.zeros_(self.residual[-1].weight)  # R = 0: the generator starts as the physics
        nn.init.zeros_(self.residual[-1].bias)

    @classmethod
    def from_surveys(cls, source, target, bands: int, in_size, out_size, **kwargs) -> "PhysicsResidualGenerator":
        """A generator whose physics is ``source`` -> ``target`` (registry surveys) at typical seeing."""
        my, mx, description = physics_operator(source, target, bands, in_size, out_size)
        if kwargs.get("repair") is True:
            kwargs["repair"] = repair_config(get_survey(target), bands)
        net = cls(bands, in_size, out_size, rank=my.shape[1], physics=description, **kwargs)
        net.physics.set_operator(my, mx)
        if net.anchor is not None:
            net.anchor = PhotometryAnchor.from_surveys(get_survey(source), get_survey(target), bands, net.physics,
                                                       out_size)
        return net

    def resized(self, in_size, out_size) -> "PhysicsResidualGenerator":
        """This generator for cutouts of ``in_size`` -> ``out_size``: its physics operator and
        anchor built for those grids from the registry, its correction R (convolutional) shared.

        Raises
        ------
        ValueError
            The registry's physics of the two surveys is not the one this generator was made
            with (their PSFs changed since), or ``out_size`` cannot hold the anchor's ring.
        """
        made_with = self.init_kwargs["physics"]
        changed = registry_mismatch(made_with)
        if changed:
            raise ValueError(changed)
        net = type(self).from_surveys(made_with.get("source"), made_with.get("target"), self.bands, in_size, out_size,
                                      width=self.init_kwargs["width"], dilations=self.init_kwargs["dilations"],
                                      correction=self.correction, anchor=self.anchor is not None,
                                      repair=self.init_kwargs.get("repair"))
        net.residual = self.residual  # the same weights (and device)
        buffer = next(self.buffers())
        return net.to(buffer.device)

    def prior(self, x: torch.Tensor) -> torch.Tensor:
        """The physics translation P(x) in flux, ``(N, bands, Ho, Wo)``."""
        check_input(x, "PhysicsResidualGenerator", self.bands, self.in_size)
        return self.physics(unstretch(x.float()))

    def unanchored(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(P(x), P(x) + R(x))`` in flux, before the photometry anchor (``x`` in model space)."""
        p = self.prior(x)
        s = stretch(p)
        delta = self.residual(s) * (2.0 * (1.0 + s.abs()))  # flux
        sigma = None if self.registry_sigma is None else self.registry_sigma.to(p.device, p.dtype)
        return p, p + conserve_flux(p, delta, self.correction, sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (N, bands, *in_size), model space -> (N, bands, *out_size), model space."""
        p, g = self.unanchored(x)
        repair = None if self.training else self.repair  # at inference: training sees what it makes
        sigma = None if self.registry_sigma is None else self.registry_sigma.to(g.device)
        if repair is not None:
            g = repair(g, sigma)
        if self.anchor is not None:
            g = self.anchor(g, p, unstretch(x.float()))
        return stretch(g if repair is None else repair.lifted(g, sigma, p))


def registry_mismatch(described: dict) -> str | None:
    """Why the registry's physics of a generator's two surveys is not the one it was made with
    (``described``: its ``physics`` description), or None.  The description records the PSF
    FWHMs (in and out, per band), so a change of those is told; one of a PSF's profile or beta,
    of a pixel scale or of the noise is not."""
    from survey2survey.physics.translator import PhysicsTranslator

    source, target = described.get("source"), described.get("target")
    try:
        ops = PhysicsTranslator(source, target).linear_operator((16, 16))
    except Exception as exc:  # noqa: BLE001 - a survey gone from the registry, one without physics
        return f"the registry has no physics of {source} -> {target} ({exc})"
    now = {op["band_out"]: op["info"] for op in ops}
    for band, was in (described.get("per_band") or {}).items():
        if band not in now or any(abs(now[band][k] - was[k]) > 1e-6 * abs(was[k]) for k in ("fwhm_in", "fwhm_out")):
            return f"the registry's {band} PSFs of {source} and {target} are not the ones the model was made with"
    return None


#: A frame whose sky noise is below this fraction of the target survey's registry sky sigma is
#: noise-free (a simulation's truth), and its noise is taken as :data:`SKY_FLOOR_FRACTION` of that
#: sigma.  With a noise of 0 every faint wing counted as the object, whose flux R's sky correction
#: was then taken back from (a hole of -42 sky sigma in the core).  What P carries from a real
#: input is far above it in both directions (CFHT -> SDSS: 0.02-0.16 of SDSS's sigma on the
#: bundled examples), so it never acts there.
NOISE_FREE_FRACTION = 1e-3
SKY_FLOOR_FRACTION = 0.1


def _registry_sigma(target: str | None, bands: int) -> torch.Tensor | None:
    """``(1, bands, 1, 1)`` flux: ``target``'s registry sky sigma, or None when the registry does
    not know it."""
    try:
        sigma = registry_sky_flux(get_survey(target), bands)
    except Exception:  # noqa: BLE001 - no such survey or no noise in the registry: no noise-free rule
        return None
    return torch.tensor(sigma, dtype=torch.float32).reshape(1, -1, 1, 1) if len(sigma) == bands else None


def conserve_flux(p: torch.Tensor, delta: torch.Tensor, correction: str = "object",
                  registry_sigma: torch.Tensor | None = None) -> torch.Tensor:
    """The flux correction ``delta`` to the physics image ``p`` (both ``(N, bands, H, W)`` flux)
    made to keep every band's flux and sky level, as ``correction`` says (:data:`CORRECTIONS`);
    ``registry_sigma`` (``(1, bands, 1, 1)`` flux): the target's registry sky sigma, against which
    a noise-free frame is told (:data:`NOISE_FREE_FRACTION`)."""
    return (_object_and_sky if correction == "object" else _frame_and_object)(p, delta, registry_sigma)


def _take_back(delta: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """``delta`` less its sum per image and band, spread as ``share`` (which sums to 1): twice, the
    second pass removing the first's float32 rounding."""
    for _ in range(2):
        delta = delta - delta.sum(dim=(2, 3), keepdim=True) * share
    return delta


def _frame_sky(p: torch.Tensor, registry_sigma: torch.Tensor | None):
    """:func:`frame_sky` of ``p``, a noise-free frame's sigma taken as a tenth of the registry's."""
    frame, level, sigma = frame_sky(p)
    if registry_sigma is not None:
        sigma = torch.where(sigma < NOISE_FREE_FRACTION * registry_sigma, SKY_FLOOR_FRACTION * registry_sigma, sigma)
    return frame, level, sigma


def _frame_and_object(p: torch.Tensor, delta: torch.Tensor, registry_sigma: torch.Tensor | None = None) -> torch.Tensor:
    """``correction="frame"`` (the first ``ours-phys`` models): the correction's mean over the
    outer frame is removed (no pedestal), then its whole sum is taken back in proportion to P
    where the object is (above twice the sky's noise), so every band keeps P's total flux.

    Taking the whole sum back from the object also moves there the sum of the sky's noise that
    R removes, which is as large as a faint object's flux: it fought R's learning to denoise.
    """
    frame, level, sigma = _frame_sky(p, registry_sigma)
    delta = delta - (delta * frame).sum(dim=(2, 3), keepdim=True) / frame.sum()
    weight = F.relu(p - level - 2.0 * sigma) + 1e-3 * F.relu(p)
    return _take_back(delta, weight / weight.sum(dim=(2, 3), keepdim=True).clamp_min(1e-30))


def _object_and_sky(p: torch.Tensor, delta: torch.Tensor, registry_sigma: torch.Tensor | None = None) -> torch.Tensor:
    """``correction="object"``: the object and the sky each keep their own flux.

    Object weight ``m``: 0 where P is within twice the sky's noise of the sky level (measured
    on the outer frame), 1 from five times, linear between.  The sky part of the correction,
    ``(1 - m) delta``, has its mean over the sky removed (the sky level is P's: no pedestal);
    the object part, ``m delta``, has its sum taken back in proportion to the object's flux
    above the sky (sharpening takes a core's flux from its own wings).  Both sum to zero, so
    every band keeps P's total flux, and removing the sky's noise moves no flux into the object.
    An image with no pixel above twice the noise takes the object part back over the sky.
    """
    _, level, sigma = _frame_sky(p, registry_sigma)
    m = ((p - level) / sigma.clamp_min(1e-30) - 2.0).clamp(0.0, 3.0) / 3.0
    sky = 1.0 - m
    sky_share = sky / sky.sum(dim=(2, 3), keepdim=True).clamp_min(1e-30)
    weight = m * F.relu(p - level)
    total = weight.sum(dim=(2, 3), keepdim=True)
    object_share = torch.where(total > 0, weight / total.clamp_min(1e-30), sky_share)
    return _take_back(delta * sky, sky_share) + _take_back(delta * m, object_share)


def registry_sky_flux(survey, bands: int) -> list[float]:
    """The registry's typical sky sigma of the first ``bands`` bands in the common flux scale."""
    return [survey.typical_sky_sigma(b) * survey.flux_factor for b in survey.bands[:bands]]


def model_space_sky_sigma(survey, bands: int) -> list[float]:
    """The registry's typical sky sigma of the first ``bands`` bands in model space: half of it in
    the common flux scale (the stretch's slope at zero is 1/2)."""
    return [0.5 * v for v in registry_sky_flux(survey, bands)]


def physics_noise_emulator(survey, bands: int) -> NoiseEmulator:
    """A noise emulator that starts as ``survey``'s registry noise, in model space.

    Amplitude: half the typical sky sigma in the common flux scale (the stretch's slope at
    zero is 1/2), the same for every seed z1; kernel: the registry's separable ``[c, 1, c]``
    correlation kernel of unit norm, in the 7x7 (so the per-pixel sigma is the amplitude
    and neighbours correlate as in the survey).  Adversarial training (step 1) may move it.
    """
    ne = NoiseEmulator(bands=bands)
    c = float(survey.noise_correlation or 0.0)
    k1 = np.array([c, 1.0, c]) / np.sqrt(1 + 2 * c * c)
    kernel = np.zeros((KERNEL_SIZE, KERNEL_SIZE))
    mid = KERNEL_SIZE // 2
    kernel[mid - 1 : mid + 2, mid - 1 : mid + 2] = np.outer(k1, k1)
    amplitude = model_space_sky_sigma(survey, bands)
    with torch.no_grad():
        ne.fc3.weight.zero_()
        a = torch.tensor(amplitude, dtype=torch.float64)
        ne.fc3.bias.copy_((a + torch.log(-torch.expm1(-a))).float()[:, None])  # softplus^-1
        ne.kernel.copy_(torch.as_tensor(kernel, dtype=torch.float32).expand_as(ne.kernel))
    return ne
