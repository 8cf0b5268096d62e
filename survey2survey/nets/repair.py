"""Specks: peaks narrower than the target survey's PSF in a generator's output, taken away.

Every source a survey sees is spread by its PSF, so a peak in a noise-free translation that is
narrower than the target's PSF is no source.  The physics translation from SDSS onto CFHT's
finer grid carries SDSS's pixel noise as blocks of about 2 x 2 CFHT pixels, and where a noise
spike is large the network does not always remove it: a speck of 1-2 pixels at 5-8 sky sigma,
which the CFHT noise on top does not hide (docs/model-card.md counts them).

:class:`SpeckRepair` finds them as the local maxima that lose more than :data:`RATIO` of their
value, and :data:`MIN_SIGMA` to :data:`MAX_SIGMA` sky sigma, to a band limit at the target's PSF
(:func:`band_limit_kernel`: its transfer is ``exp(-(k / k0) ** 4)`` along each axis, ``k0`` where
the PSF's own transfer, pixel included, falls to :data:`MTF_LEVEL`), and the local minima that gain
as much (dips: noise is symmetric, and taking away only the spikes would lower the flux). A point
source through the typical PSF loses 7-13 % of its peak to that band limit (z to u; 14-20 % at 0.8
x the seeing, 24-32 % at 0.6 x); on the independent pairs of ``bench/independent_pairs.py`` the
specks lose 0.51-0.71 of theirs (quartiles), the local maxima on sources 0.04 (median; 1 % of them
above 0.28-0.43 here and on the README simulation's pairs). The 3 x 3 pixels about each are filled
in from the pixels around them (a Gaussian-weighted mean of the rest), a spike only lowered and a
dip only raised, and the light taken from them spread evenly over the image (a few sky sigma-pixels
over 18,000 pixels), so that every band keeps its flux: the network leaves more spikes than dips,
and R took their light from the rest of the image. The band limit itself is not applied to the
image: it would take 7-13 % off every star's peak.

Dark rings: a sky-subtracted scene is nowhere darker than its sky, so a noise-free translation
that is (the network over-sharpens a bright star or core and leaves dark lobes or a ring about it,
tens of sky sigma deep, plainly visible under the survey's noise) is wrong there.  With ``lift``
(:data:`LIFT_SIGMA` for new models), every band's pixels more than ``lift`` sky sigma below the
sky and their neighbours are raised to the sky, and the light that adds is taken back from the
bright pixels near them (a Gaussian of :data:`TAKE_SIGMA` pixels: the core the ring was made for),
in proportion to their light, what they cannot give from the rest of the plane's light, so that
each band keeps its flux and its sky level.  The sky is zero, or lower where the input's sky was
subtracted too much (the median of the output's outer frame): one SDSS sky sigma too much is
1.8-4.2 CFHT sigma per CFHT pixel (r to u), and such an image keeps its level.  On a noise-free
translation the sky lies within about 1 sigma of its level (what is left of the source survey's
noise), so a pixel 3 sigma below it is no sky.  Only what the network made dark is
lifted: a pixel must also be darker by ``lift`` than the physics translation there and smoothed
about it (which carries the input's own dark defects, sky gradients and over-subtracted skies, and
is bright where the network's ring is), and nothing within :data:`DEFECT_REACH` pixels of where
the smoothed physics is :data:`DEFECT` x ``lift`` below the sky (a bad column: the network
spreads its darkness wider than the physics) is lifted.

The kernels are computed from the PSF's analytic transfer (no GalSim) when the generator is
built, from what its config records (``repair``: the target's PSF FWHM per band in pixels, its
profile and Moffat beta, the bands repaired, ``lift``): a model carries no extra weights for them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from survey2survey.nets.sky import frame_pixels

__all__ = ["SpeckRepair", "band_limit_kernel", "lift_dark", "psf_transfer", "repair_config", "RATIO", "MIN_SIGMA",
           "MAX_SIGMA", "MTF_LEVEL", "LIFT_SIGMA"]

#: A local maximum losing more than this fraction of its value to the band limit is a speck.
RATIO = 0.45
#: ... and losing at least this many of the target's registry sky sigma, and less than MAX_SIGMA:
#: the specks stand 5-8 sigma high; a source's core the network made too sharp is left alone.
MIN_SIGMA = 2.0
MAX_SIGMA = 20.0
#: The band limit's scale: where the PSF's transfer (pixel included) falls to this level.
MTF_LEVEL = 0.03
#: The Gaussian (sigma, half-size in pixels) that fills a speck's square from the pixels around it.
FILL_SIGMA = 1.0
FILL_REACH = 2
#: Side of the band limit's kernel (pixels; odd).
KERNEL_SIZE = 7
#: New models' ``lift``: pixels of the noise-free translation below this many sky sigma are raised.
LIFT_SIGMA = 3.0
#: The Gaussian (sigma, half-size in pixels) over which a raised pixel's light is taken back, and
#: the light (sky sigma) below which the pixels near it are not counted as a source to take it from.
TAKE_SIGMA = 3.0
TAKE_REACH = 9
TAKE_FLOOR = 1.0
#: Where the physics, smoothed like the take, is this many ``lift`` below the sky the input has a
#: defect (its noise alone reaches about 1.1 ``lift`` in u and z): nothing within DEFECT_REACH
#: pixels of it is lifted (the network spreads a bad column's darkness wider than the physics).
DEFECT = 1.5
DEFECT_REACH = 12
_POWER = 4
_GRID = 64


def psf_transfer(profile: str, fwhm_px: float, freq: np.ndarray, beta: float = 3.0) -> np.ndarray:
    """The transfer function (OTF, 1 at zero) of a round PSF of FWHM ``fwhm_px`` pixels at spatial
    frequencies ``freq`` (cycles per pixel): Kolmogorov (long exposure, ``exp(-3.44 (f FWHM /
    0.976) ** (5/3))``), Gaussian, or Moffat of index ``beta`` (numerically, by a Hankel transform)."""
    freq = np.asarray(freq, dtype=np.float64)
    if profile == "kolmogorov":
        return np.exp(-3.44 * (freq * fwhm_px / 0.976) ** (5.0 / 3.0))
    if profile == "gaussian":
        sigma = fwhm_px / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        return np.exp(-2.0 * (np.pi * sigma * freq) ** 2)
    if profile == "moffat":
        from scipy.special import j0

        alpha = fwhm_px / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
        r = np.linspace(0.0, 60.0 * fwhm_px, 24001)
        weight = r * (1.0 + (r / alpha) ** 2) ** (-beta)
        flat = freq.ravel()
        otf = np.array([np.trapezoid(weight * j0(2.0 * np.pi * f * r), r) for f in flat]) / np.trapezoid(weight, r)
        return otf.reshape(freq.shape)
    raise ValueError(f"unknown PSF profile {profile!r}")


def band_limit_kernel(profile: str, fwhm_px: float, beta: float = 3.0) -> np.ndarray:
    """(KERNEL_SIZE,) kernel of sum 1 whose transfer is ``exp(-(k / k0) ** 4)``, ``k0`` the frequency
    where the PSF's transfer, pixel included, falls below :data:`MTF_LEVEL` (Nyquist if it never
    does); applied along both axes (separable: its transfer is the product of the two)."""
    fine = np.linspace(0.0, 0.5, 1001)
    below = np.flatnonzero(psf_transfer(profile, fwhm_px, fine, beta) * np.sinc(fine) < MTF_LEVEL)
    k0 = fine[below[0]] if below.size else 0.5
    f = np.fft.fftfreq(_GRID)
    kernel = np.fft.fftshift(np.real(np.fft.ifft(np.exp(-((np.abs(f) / k0) ** _POWER)))))
    c, h = _GRID // 2, KERNEL_SIZE // 2
    kernel = kernel[c - h : c + h + 1]
    return kernel / kernel.sum()

class SpeckRepair(nn.Module):
    """``repair(g, sigma)``: flux images ``g`` (N, bands, H, W) with their specks (spikes and dips)
    taken away (module docstring); ``sigma`` (1, bands, 1, 1) the target's registry sky sigma in
    the same units, or None (nothing is taken away: a speck is told from a source by its height).

    Parameters
    ----------
    fwhm_px : sequence of float
        The target's PSF FWHM per band, in its pixels.
    profile : str
        ``kolmogorov``, ``gaussian`` or ``moffat``.
    beta : float
        Moffat index.
    bands : sequence of int, optional
        The bands (indices) whose specks are taken away; default all.
    lift : float, optional
        :meth:`lifted` raises every band's pixels more than ``lift`` sky sigma below the sky
        (:func:`lift_dark`); default None: it returns its input.
    """

    def __init__(self, fwhm_px, profile: str = "kolmogorov", beta: float = 3.0, bands=None, lift: float | None = None):
        super().__init__()
        self.bands = list(range(len(fwhm_px))) if bands is None else sorted(int(b) for b in bands)
        if lift is not None and not float(lift) > 0:
            raise ValueError(f"lift must be a positive number of sky sigma, not {lift!r}")
        self.lift = None if lift is None else float(lift)
        take = np.exp(-np.arange(-TAKE_REACH, TAKE_REACH + 1) ** 2 / (2.0 * TAKE_SIGMA**2))
        self.register_buffer("take", torch.tensor(take / take.sum(), dtype=torch.float32).reshape(1, 1, 1, -1),
                             persistent=False)
        kernels = np.stack([band_limit_kernel(profile, float(fwhm_px[b]), beta) for b in self.bands]
                           or [np.zeros(KERNEL_SIZE)])  # (n, K)
        self.register_buffer("kernel", torch.tensor(kernels[:, None, None], dtype=torch.float32), persistent=False)
        fill = np.exp(-np.arange(-FILL_REACH, FILL_REACH + 1) ** 2 / (2.0 * FILL_SIGMA**2))
        self.register_buffer("fill", torch.tensor(fill[None, None, None], dtype=torch.float32).expand(
            len(self.bands), 1, 1, -1).contiguous(), persistent=False)

    @classmethod
    def from_config(cls, config: dict) -> "SpeckRepair":
        """The repair a generator's config records (:func:`repair_config`)."""
        return cls(config["fwhm_px"], config.get("profile", "kolmogorov"), config.get("beta", 3.0),
                   config.get("bands"), config.get("lift"))

    def lifted(self, g: torch.Tensor, sigma: torch.Tensor | None = None,
               physics: torch.Tensor | None = None) -> torch.Tensor:
        """``g`` with its pixels more than ``lift`` sky sigma below the sky, and below the
        ``physics`` translation if given, raised (:func:`lift_dark`), if the repair has a ``lift``."""
        if sigma is None or self.lift is None:
            return g
        return lift_dark(g, sigma.to(g.dtype), self.lift, self.take.to(g.dtype), physics)

    def band_limited(self, g: torch.Tensor) -> torch.Tensor:
        """The repaired bands of ``g`` through the band limit (mirrored edges)."""
        return _separable(g[:, self.bands], self.kernel.to(g.dtype))

    def forward(self, g: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """``g`` without its specks."""
        if sigma is None or not self.bands:
            return g
        sigma = sigma.to(g.dtype)
        repaired = self._repair(g[:, self.bands], self.band_limited(g), sigma[:, self.bands])
        if len(self.bands) == g.shape[1]:
            return repaired
        out = list(g.unbind(dim=1))
        for i, b in enumerate(self.bands):
            out[b] = repaired[:, i]
        return torch.stack(out, dim=1)

    def _repair(self, g: torch.Tensor, limited: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        lost = g - limited
        size = lost.abs()
        narrow = (size > RATIO * g.abs()) & (size > MIN_SIGMA * sigma) & (size < MAX_SIGMA * sigma)
        bright = narrow & (lost > 0) & (g >= _max3(g))  # a spike
        dark = narrow & (lost < 0) & (g <= -_max3(-g))  # a dip
        up, down = _max3(bright.to(g.dtype)), _max3(dark.to(g.dtype))  # their 3 x 3 squares
        # the squares filled in from the pixels around them (a normalised convolution)
        keep = 1.0 - torch.maximum(up, down)
        weight = self.fill.to(g.dtype)
        around = _separable(g * keep, weight) / _separable(keep, weight).clamp_min(1e-6)
        # a spike is only lowered and a dip only raised (beside a brighter source the fill would
        # add light); where a spike's square meets a dip's, the pixel stays
        out = torch.where((up > 0) & (down == 0), torch.minimum(g, around), g)
        out = torch.where((down > 0) & (up == 0), torch.maximum(g, around), out)
        # their light back, spread over the whole image: each band keeps its flux (the network
        # leaves more spikes than dips, whose light R took from the rest of the image)
        return out + (g - out).mean(dim=(2, 3), keepdim=True)


def lift_dark(g: torch.Tensor, sigma: torch.Tensor, lift: float, taps: torch.Tensor,
              physics: torch.Tensor | None = None) -> torch.Tensor:
    """``g`` (N, bands, H, W) with the pixels more than ``lift`` ``sigma`` (1, bands, 1, 1) below
    the sky, and below the ``physics`` translation of the same input (N, bands, H, W), if given,
    there and smoothed by ``taps`` (the input's own dark defects are left), and their 3 x 3
    neighbours, raised to the sky, the light that adds taken back from the light near them
    (normalised by ``taps`` (1, 1, 1, K), a Gaussian of sum 1), what they cannot give from the rest
    of the plane's light: each band keeps its flux and its sky (module docstring).  The sky is
    zero, or the median of the outer :data:`~survey2survey.nets.sky.BORDER` pixels where that is
    lower (an input whose sky was subtracted too much is not lifted).  The planes without a pixel
    below ``-lift`` sigma, or with one that is not finite, are returned as they are."""
    flat = g.flatten(2)
    dark = flat.amin(dim=2) < -lift * sigma.flatten(1)  # (N, bands): the planes to lift (a NaN: not)
    p = torch.full_like(g, float("inf")) if physics is None else physics.to(g.dtype)
    if torch.compiler.is_compiling():  # (torch.export too) one graph, no branch on the data
        lifted, changed = _lifted(g / sigma, p / sigma, lift, taps)
        return torch.where((dark & flat.isfinite().all(dim=2))[..., None, None] & changed, lifted * sigma, g)
    which = dark.nonzero(as_tuple=True)
    finite = g[which].flatten(1).isfinite().all(dim=1)  # (-inf: not)
    which = (which[0][finite], which[1][finite])
    if not which[0].numel():
        return g
    out = g.clone()
    scale = sigma.expand_as(g)[which]
    lifted, changed = _lifted((g[which] / scale)[:, None], (p[which] / scale)[:, None], lift, taps)
    out[which] = torch.where(changed[:, 0], lifted[:, 0] * scale, g[which])
    return out


def _lifted(d: torch.Tensor, p: torch.Tensor, lift: float, taps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`lift_dark` on planes ``d`` (M, C, H, W) in sky sigma, ``p`` their physics (or inf):
    the planes, and whether each was changed ``(M, C, 1, 1)``."""
    frame = frame_pixels(d)
    sky = frame.sort(dim=-1).values[..., frame.shape[-1] // 2].clamp_max(0.0)[..., None, None]  # (ONNX has no median)
    e = d - sky
    bright = e.clamp_min(0.0)
    # darker than the sky, and than the physics there and about it (the physics carries the input's
    # defects, sky and gradients, not the network's rings; smoothed, it is above the noise it
    # carries); and nothing near where the smoothed physics is far below the sky (a bad column:
    # the network spreads its darkness wider than the physics)
    smooth = _separable(p.nan_to_num(posinf=0.0), taps)
    shown = torch.where(torch.isfinite(p), torch.minimum(p, smooth), p)
    defect = (smooth < sky - DEFECT * lift).to(d.dtype)
    near_defect = F.max_pool2d(defect, 2 * DEFECT_REACH + 1, stride=1, padding=DEFECT_REACH) > 0
    dark = (e < -lift) & (d < shown - lift) & ~near_defect
    lifted = torch.where(_max3(dark.to(d.dtype)) > 0, bright, e)
    added = lifted - e
    # Sum over y of added(y) k(x - y) / near(y), times bright(x): the light near each raised pixel
    # gives it back in proportion to its own (exactly, but where a pixel has too little to give)
    near = _separable(bright, taps).clamp_min(TAKE_FLOOR)
    taken = torch.minimum(bright * _separable(added / near, taps), bright)
    # what the light near them could not give, from the light left in proportion to it (a star's
    # ring far from its core), and only what no light can give spread evenly (a plane all sky)
    left = bright - taken
    rest = (added - taken).sum(dim=(2, 3), keepdim=True)
    have = left.sum(dim=(2, 3), keepdim=True)
    share = torch.minimum(rest, have) / have.clamp_min(1e-12)
    out = lifted - taken - share * left
    out = out - (out - e).mean(dim=(2, 3), keepdim=True)  # rounding, and what no light could give
    return out + sky, dark.flatten(2).any(dim=2)[..., None, None]


def _max3(images: torch.Tensor) -> torch.Tensor:
    """The maximum over each pixel's 3 x 3 square (edges repeated): shifted slices, far cheaper
    than ``max_pool2d`` on the CPU."""
    rows = F.pad(images, (1, 1, 0, 0), mode="replicate")
    rows = torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])
    cols = F.pad(rows, (0, 0, 1, 1), mode="replicate")
    return torch.maximum(torch.maximum(cols[..., :-2, :], cols[..., 1:-1, :]), cols[..., 2:, :])


def _separable(images: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """``images`` (N, C, H, W) convolved along both axes with ``taps`` (C, 1, 1, K), mirrored edges
    (as weighted sums of shifted slices: on the CPU several times faster than a grouped conv2d)."""
    k = taps.shape[-1]
    h = k // 2
    w = taps.reshape(1, -1, 1, k)
    rows = F.pad(images, (h, h, 0, 0), mode="reflect")
    width = images.shape[-1]
    rows = sum(w[..., i : i + 1] * rows[..., i : i + width] for i in range(k))
    cols = F.pad(rows, (0, 0, h, h), mode="reflect")
    height = images.shape[-2]
    return sum(w[..., i : i + 1] * cols[..., i : i + height, :] for i in range(k))


def repair_config(survey, bands: int, repaired=None, lift: float | None = LIFT_SIGMA) -> dict:
    """What :class:`SpeckRepair` is built from for a generator into ``survey`` (a registry
    survey): its typical PSF FWHM in its pixels for the first ``bands`` bands, profile and beta,
    the names of the bands ``repaired`` (default all), and ``lift`` (None: no lifting)."""
    names = list(survey.bands)[:bands]
    config = {"fwhm_px": [survey.typical_fwhm(b) / survey.pixel_scale for b in names],
              "profile": survey.psf_profile, "beta": float(survey.psf_beta or 3.0)}
    if repaired is not None:
        config["bands"] = [names.index(b) for b in repaired]
    if lift is not None:
        config["lift"] = float(lift)
    return config
