"""Local fluctuation patterns in Fourier space (Lin & Fouchez 2021, Fig. 6).

Each band is convolved ('valid', H -> H - 4) with the 5x5 high-pass filter of the
paper's discriminators (Fig. 2g), its 2-D FFT amplitude is taken, and the amplitude maps
are stacked (averaged) over the set.  A translation that regenerates realistic noise has a
stack like the reference's; smooth outputs give a faint stack, deconvolution or
pixel-shuffle artefacts give sharp peaks.  As in the paper the map is not shifted: the
zero frequency is in the corners and the centre holds the highest frequencies.

Numbers reported:

* per image, ``hf_amp_ratio = rms(hp(pred)) / rms(hp(ref))`` (by Parseval, the ratio of
  the images' summed Fourier powers, square-rooted): 1 = same high-frequency amplitude;
* per set, ``stack_distance``: mean over Fourier modes (zero frequency excluded) of
  ``|log10(stack_pred / stack_ref)|``, 0 for identical stacks, 0.1 for a typical 26 %
  mismatch, each mode's term capped at :data:`MAX_LOG_RATIO` (6 dex) so that a noise-free
  prediction gets a large finite distance; and ``stack_amp_ratio = sum stack_pred / sum
  stack_ref``.
"""

from __future__ import annotations

import numpy as np

from survey2survey.metrics.base import Metric, MetricResult, Quantity

__all__ = [
    "HIGH_PASS_KERNEL",
    "MAX_LOG_RATIO",
    "high_pass",
    "fourier_amplitude",
    "full_plane",
    "log_ratio_distance",
    "FourierMetric",
]

#: Cap (dex) of one mode's |log10 ratio| in the distances: zero power on one side would
#: otherwise make them infinite.
MAX_LOG_RATIO = 6.0

#: The discriminators' fixed high-pass filter (Lin & Fouchez 2021, Fig. 2g).
HIGH_PASS_KERNEL = np.array(
    [
        [-1, 3, -4, 3, -1],
        [3, -8, 10, -8, 3],
        [-4, 10, -12, 10, -4],
        [3, -8, 10, -8, 3],
        [-1, 3, -4, 3, -1],
    ],
    dtype=np.float64,
)
HIGH_PASS_KERNEL.setflags(write=False)


def _separable_terms():
    # the kernel has rank 2: two outer products of 5-tap filters, i.e. four 1-D passes
    # instead of 25 shifted copies of the image
    u, s, vt = np.linalg.svd(HIGH_PASS_KERNEL)
    return [(u[:, i] * s[i], vt[i]) for i in range(2)]


_TERMS = _separable_terms()


def high_pass(images: np.ndarray) -> np.ndarray:
    """Correlate each image with :data:`HIGH_PASS_KERNEL`, keeping the 'valid' part.

    Parameters
    ----------
    images : ndarray, shape (..., H, W)
        Native flux units.

    Returns
    -------
    ndarray, shape (..., H - 4, W - 4), float32
        The kernel sums to zero, and so do its first moments: constants and planes vanish.
    """
    from scipy import ndimage

    images = np.ascontiguousarray(images, dtype=np.float32)
    h, w = images.shape[-2:]
    out = None
    for col, row in _TERMS:
        tmp = ndimage.correlate1d(images, col.astype(np.float32), axis=-2, mode="constant")
        tmp = ndimage.correlate1d(tmp, row.astype(np.float32), axis=-1, mode="constant")
        out = tmp if out is None else out + tmp
    # the symmetric 5-tap filters are centred: valid region = 2 px in from each edge
    return np.ascontiguousarray(out[..., 2 : h - 2, 2 : w - 2])


def fourier_amplitude(images: np.ndarray) -> np.ndarray:
    """``|FFT2|`` of real images, half plane (``rfft2``) to save time.

    Parameters
    ----------
    images : ndarray, shape (..., H, W)

    Returns
    -------
    ndarray, shape (..., H, W // 2 + 1), float32
        Amplitudes in the images' units times pixels (no normalisation, as ``numpy.fft``).
        :func:`full_plane` rebuilds the full (H, W) map.
    """
    import scipy.fft

    return np.abs(scipy.fft.rfft2(np.asarray(images, dtype=np.float32), workers=-1))


def full_plane(half: np.ndarray, width: int) -> np.ndarray:
    """Full (H, W) amplitude map from an ``rfft2`` half plane of a real image.

    Uses ``|F(-u, -v)| = |F(u, v)|`` for real input.

    Parameters
    ----------
    half : ndarray, shape (..., H, W // 2 + 1)
    width : int
        W of the original images.
    """
    h = half.shape[-2]
    out = np.empty(half.shape[:-1] + (width,), dtype=half.dtype)
    nh = half.shape[-1]
    out[..., :nh] = half
    v = np.arange(nh, width)
    u = (-np.arange(h)) % h
    out[..., nh:] = half[..., u[:, None], (width - v)[None, :]]
    return out


def log_ratio_distance(a: np.ndarray, b: np.ndarray, axis=(-2, -1), skip_zero: bool = True) -> np.ndarray:
    """Mean of ``min(|log10(a / b)|, 6)`` over ``axis`` (modes where both are 0 left out).

    Parameters
    ----------
    a, b : ndarray
        Non-negative spectra or amplitude maps of the same shape.
    axis : int or tuple of int
    skip_zero : bool
        Leave out element [..., 0, 0] (the zero frequency of an unshifted 2-D map).

    Returns
    -------
    ndarray
        Dex; 0 for identical inputs; NaN if no element is usable.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.abs(np.log10(a) - np.log10(b))
    term = np.minimum(term, MAX_LOG_RATIO)  # also turns inf (one side zero) into the cap
    term[(a == 0) & (b == 0)] = np.nan
    if skip_zero:
        term[..., 0, 0] = np.nan
    usable = np.isfinite(term)
    n = usable.sum(axis=axis)
    total = np.where(usable, term, 0.0).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


class FourierMetric(Metric):
    """Stacked Fourier amplitude of the high-pass filtered images (Lin & Fouchez Fig. 6)."""

    name = "fourier"
    title = "Local fluctuations: stacked FFT amplitude of high-pass images (Lin & Fouchez 2021, Fig. 6)"
    parameters = {"fourier_layout": "unshifted FFT: zero frequency in the corners, highest frequency at the centre"}
    columns = (
        Quantity(
            "hf_amp_ratio", "HF amplitude pred/ref", "", "1",
            "rms of the high-pass filtered prediction over that of the reference: "
            "<1 too smooth (noise missing), >1 too much small-scale power",
            headline=True,
        ),
    )
    set_quantities = (
        Quantity(
            "stack_distance", "Fourier stack distance", "dex", "0",
            "mean over Fourier modes of |log10(stack_pred / stack_ref)|; 0 = identical stacks",
            headline=True,
        ),
        Quantity(
            "stack_amp_ratio", "Fourier stack amplitude ratio", "", "1",
            "summed stacked amplitude of pred over that of ref",
        ),
    )

    @classmethod
    def plot(cls, evaluation, out):
        from survey2survey.plots import plot_fourier

        done = {}
        for band in evaluation.bands:
            path = plot_fourier(evaluation, band, out / f"fourier_{band}.png")
            if path is not None:
                done[f"fourier_{band}"] = path
        return done

    def __init__(self, context):
        super().__init__(context)
        self._width = None

    def measure(self, pred, ref, truth):
        hp_pred = high_pass(pred)
        hp_ref = high_pass(ref)
        self._width = hp_ref.shape[-1]  # the half-plane maps do not tell odd from even W
        rms_pred = np.sqrt(np.mean(np.square(hp_pred, dtype=np.float32), axis=(-2, -1), dtype=np.float64))
        rms_ref = np.sqrt(np.mean(np.square(hp_ref, dtype=np.float32), axis=(-2, -1), dtype=np.float64))
        amp_pred = fourier_amplitude(hp_pred).sum(axis=0, dtype=np.float64)  # (C, H', W'//2+1)
        amp_ref = fourier_amplitude(hp_ref).sum(axis=0, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(rms_ref > 0, rms_pred / rms_ref, np.nan)
        return {"hf_amp_ratio": ratio}, {"amp_pred": amp_pred, "amp_ref": amp_ref}

    def result(self):
        if not self.n_images:
            return MetricResult()
        width = self._width
        stack_pred = full_plane(self._sum("amp_pred") / self.n_images, width)  # (C, H', W')
        stack_ref = full_plane(self._sum("amp_ref") / self.n_images, width)
        # the zero frequency is ~0 for both (the kernel sums to 0): left out
        distance = log_ratio_distance(stack_pred, stack_ref)
        amp_ratio = stack_pred.sum(axis=(-2, -1)) / stack_ref.sum(axis=(-2, -1))
        return MetricResult(
            values=self._per_band(stack_distance=distance, stack_amp_ratio=amp_ratio),
            arrays={"stack_pred": stack_pred.astype(np.float32), "stack_ref": stack_ref.astype(np.float32)},
            notes={"layout": "unshifted FFT: zero frequency in the corners, highest frequency at the centre"},
        )
