"""Putting a prediction on its reference's pixel grid (``s2s evaluate --align``).

A translation keeps its input's sky grid, and a reference cutout of the same object from the
other survey is cut on its own: their WCSs say how far apart the two grids are (survey
cutouts are centred on catalogue positions, a fraction of a pixel apart).  Compared pixel by
pixel, every metric counts that offset as error: a bright galaxy shifted by 0.3 px differs
from itself by many sigma.  With ``--align`` the prediction is shifted onto the reference's
grid first.

The shift is a Fourier (sinc) one, of the image mirrored at its edges: it moves the image
without smoothing it, so the prediction's noise keeps its level and spectrum (an
interpolation would lower both).  Only an offset is taken out: a prediction whose grid is
rotated or scaled against the reference's (more than :data:`MAX_WARP_PX` apart at the corners
once the centres agree) is not comparable pixel by pixel and is reported (per file) rather than
resampled, and so is one whose grid is further from the reference's than
:data:`MAX_OFFSET_FRACTION` of the image's side (another cutout of the sky, or a WCS that
cannot place the other's centre): the shift would bring in that much mirrored image.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["ALIGN_TOLERANCE_PX", "MAX_OFFSET_FRACTION", "MAX_WARP_PX", "MIN_OFFSET_LIMIT_PX", "OFFSET_WARNING_PX",
           "TRUTH_TOLERANCE_PX", "GridTally", "grid_offset", "shift_image", "shift_masked", "truth_off_grid"]

#: How far (pixels) the mask of a shifted image with unknown pixels is grown.
MASK_GROWTH_PX = 2
#: A median offset between the grids of predictions and references (px) that the pixel metrics feel.
OFFSET_WARNING_PX = 0.05
#: Offsets below this (pixels) are left alone.
ALIGN_TOLERANCE_PX = 1e-3
#: Largest distance (pixels) at the image's corners, once the centres agree, of two grids taken as
#: the same but for an offset: half a pixel, beyond which a corner pixel faces its neighbour (a
#: learned model's output grid can differ from the survey's by a few 0.1 % in scale: the default
#: model's 136 px CFHT cutouts are 0.35 % finer than CFHT's pixels, 0.33 px at the corners).
MAX_WARP_PX = 0.5
#: Largest offset between the two grids, as a fraction of the image's shorter side (and at least
#: :data:`MIN_OFFSET_LIMIT_PX`): survey cutouts of one object are centred within a pixel or two of
#: each other; further apart they are cut around other positions, and a shift would fill that
#: much of the image with its mirror.
MAX_OFFSET_FRACTION = 0.05
MIN_OFFSET_LIMIT_PX = 2.0


def grid_offset(pred_wcs, ref_wcs, shape: tuple[int, int], max_warp: float = MAX_WARP_PX) -> tuple[float, float]:
    """``(dy, dx)``: where the reference's central pixel falls on the prediction's grid, less its
    own position (pixels; 0-based, ``shape`` = (H, W) of both images).

    Raises ValueError (its message a reason for one line) when the grids differ by more than an
    offset (another pixel scale or orientation), when the prediction's WCS cannot place the
    reference's centre, or when the offset is more than :data:`MAX_OFFSET_FRACTION` of the side.
    """
    a = np.asarray(pred_wcs.celestial.pixel_scale_matrix, dtype=float)
    b = np.asarray(ref_wcs.celestial.pixel_scale_matrix, dtype=float)
    y, x = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    # a reference pixel's step seen on the prediction's grid, less the step itself, at the corners
    warp = np.linalg.solve(a, b) - np.eye(2)
    worst = float(np.hypot(*(warp @ np.array([[x, x, -x, -x], [y, -y, y, -y]]))).max())
    if worst > max_warp:
        raise ValueError(f"its WCS is rotated or scaled against the reference's ({worst:.2g} px apart at the "
                         "corners once the centres agree): --align only shifts")
    try:
        px, py = pred_wcs.celestial.world_to_pixel(ref_wcs.celestial.pixel_to_world(x, y))
        dy, dx = float(py) - y, float(px) - x
    except Exception as exc:  # noqa: BLE001 - astropy raises several kinds for a point off the projection
        raise ValueError(f"its WCS cannot place the reference's centre ({type(exc).__name__})") from None
    if not (np.isfinite(dy) and np.isfinite(dx)):
        raise ValueError("its WCS cannot place the reference's centre (off its projection)")
    limit = max(MIN_OFFSET_LIMIT_PX, MAX_OFFSET_FRACTION * min(shape))
    if np.hypot(dy, dx) > limit:
        raise ValueError(f"its grid is {np.hypot(dy, dx):.4g} px from the reference's (more than {limit:.3g} px, "
                         f"{MAX_OFFSET_FRACTION:.0%} of the side or {MIN_OFFSET_LIMIT_PX:g} px): not a cutout of "
                         "the same position")
    return dy, dx


#: Largest offset (pixels) between a noise-free truth's grid and its reference's: the truth is the
#: reference without its noise, on the same pixels.
TRUTH_TOLERANCE_PX = 0.01


def truth_off_grid(truth_wcs, ref_wcs, shape: tuple[int, int]) -> str | None:
    """Why a truth image does not lie on its reference's pixels (one line), or None when it does."""
    try:
        dy, dx = grid_offset(truth_wcs, ref_wcs, shape, max_warp=TRUTH_TOLERANCE_PX)
    except ValueError as exc:
        return f"{exc}; a truth must lie on its reference's pixels"
    if np.hypot(dy, dx) > TRUTH_TOLERANCE_PX:
        return f"its grid is {np.hypot(dy, dx):.3g} px from the reference's: a truth must lie on its reference's pixels"
    return None


def shift_image(planes: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``planes`` (..., H, W) resampled at ``(y + dy, x + dx)``: a Fourier shift of the image
    mirrored at its edges (no smoothing; the mirror keeps the edges from wrapping round).

    A real image's wave at the Nyquist frequency cannot move by a fraction of a pixel: the
    plain phase ramp jumps there, and the noise's power in a cutout's Nyquist row and column
    was lost (all of it at half a pixel, 0.64 on average over offsets). The shift eases to the
    nearest whole pixel from :data:`NYQUIST_EASE` to the Nyquist frequency instead: white noise
    shifted by 0.5 px keeps 0.93 of its power in the Nyquist row (0.015 before) and 0.97-1.01
    below 0.45 cycles per pixel, and what lies that close to Nyquist (noise; a PSF-limited image
    holds next to nothing there) is moved by less than the fraction.
    """
    planes = np.asarray(planes, dtype=np.float64)
    h, w = planes.shape[-2:]
    big = np.concatenate([planes, planes[..., ::-1, :]], axis=-2)
    big = np.concatenate([big, big[..., :, ::-1]], axis=-1)  # (..., 2H, 2W): periodic without a jump
    phase = _phase(np.fft.fftfreq(2 * h), dy)[:, None] * _phase(np.fft.rfftfreq(2 * w), dx)[None, :]
    out = np.fft.irfft2(np.fft.rfft2(big) * phase, s=(2 * h, 2 * w))
    return out[..., :h, :w].astype(np.float32)


#: Frequencies (cycles per pixel) above which the shift eases to the nearest whole pixel.
NYQUIST_EASE = 0.4


def _phase(k: np.ndarray, d: float) -> np.ndarray:
    """The shift's phase ramp along one axis: ``d`` below :data:`NYQUIST_EASE`, easing linearly
    to ``round(d)`` at the Nyquist frequency, so the ramp is continuous across it."""
    ease = np.clip((np.abs(k) - NYQUIST_EASE) / (0.5 - NYQUIST_EASE), 0.0, 1.0)
    return np.exp(2j * np.pi * k * (d + (np.round(d) - d) * ease))


def shift_masked(planes: np.ndarray, mask: np.ndarray, dy: float, dx: float) -> tuple[np.ndarray, np.ndarray]:
    """``planes`` (..., H, W) whose pixels under ``mask`` are unknown, shifted as :func:`shift_image`
    does, and the mask with them.

    A Fourier shift rings every error of a filled pixel through the whole image, so here the
    unknown pixels are filled from their neighbours (a Gaussian-weighted mean of the known ones)
    and the image is shifted by a cubic spline, whose reach is a few pixels (it smooths the noise
    a little); the mask moves with the image, grown by :data:`MASK_GROWTH_PX` pixels.
    """
    from scipy.ndimage import binary_dilation, gaussian_filter
    from scipy.ndimage import shift as spline_shift

    planes = np.asarray(planes, dtype=np.float64)
    known = (~mask).astype(np.float64)
    lead = (0,) * (planes.ndim - 2)
    near = gaussian_filter(planes * known, lead + (2.0, 2.0)) / np.maximum(gaussian_filter(known, lead + (2.0, 2.0)), 1e-6)
    moved = spline_shift(np.where(mask, near, planes), lead + (-dy, -dx), order=3, mode="mirror")
    # the pixels whose new position takes anything from an unknown one (linear weights), grown
    bad = spline_shift(mask.astype(np.float64), lead + (-dy, -dx), order=1, mode="nearest") > 0
    grow = np.zeros((1,) * (mask.ndim - 2) + (3, 3), bool)
    grow[..., 1, :] = grow[..., :, 1] = True
    return moved.astype(np.float32), binary_dilation(bad, structure=grow, iterations=MASK_GROWTH_PX)


class GridTally:
    """Where each prediction lies against its reference's grid, over an evaluation (thread-safe):
    :meth:`place` puts a prediction on the reference's grid (or leaves it), :meth:`report` says
    what was seen."""

    def __init__(self, align: bool):
        self.align = align
        self.offsets: list[float] = []  # px between the grids, per pair with two WCSs
        self.no_wcs = 0
        self.warped = 0
        self._lock = threading.Lock()

    def place(self, pred, ref, planes: np.ndarray, mask):
        """``(planes, mask)`` of the cutout ``pred`` (its bands as compared; ``mask`` its bad pixels
        or None) on ``ref``'s grid when aligning, else as they are; a str: why it cannot be (aligning)."""
        if pred.wcs is None or ref.wcs is None:
            with self._lock:
                self.no_wcs += 1
            return planes, mask
        try:
            dy, dx = grid_offset(pred.wcs, ref.wcs, ref.data.shape[-2:])
        except ValueError as exc:
            if self.align:
                return str(exc)
            with self._lock:
                self.warped += 1
            return planes, mask
        with self._lock:
            self.offsets.append(float(np.hypot(dy, dx)))
        if not self.align or max(abs(dy), abs(dx)) <= ALIGN_TOLERANCE_PX:
            return planes, mask
        if mask is not None and mask.any():
            return shift_masked(planes, mask, dy, dx)
        return shift_image(planes, dy, dx), mask

    def report(self) -> tuple[dict, list[str]]:
        """The report's parameters, and the warnings for what the pixel metrics count as error."""
        params: dict = {"align": self.align, "pairs_without_wcs": self.no_wcs}
        warnings = []
        if self.no_wcs and self.align:
            warnings.append(f"{self.no_wcs} pair(s) not aligned: the prediction or the reference has no WCS "
                            "(compared pixel by pixel)")
        if self.warped:
            warnings.append(f"{self.warped} prediction(s) lie on pixel grids that are more than shifted from their "
                            f"references' (rotated or scaled: more than {MAX_WARP_PX:g} px apart at the corners; or "
                            f"more than {MAX_OFFSET_FRACTION:.0%} of the side apart, or not placed by the WCS): their "
                            "pixel metrics compare unrelated pixels")
        if self.offsets:
            median, worst = float(np.median(self.offsets)), float(np.max(self.offsets))
            if not self.align and median > OFFSET_WARNING_PX:
                warnings.append(f"predictions and references lie on pixel grids {median:.2f} px apart (median; at "
                                f"most {worst:.2f}) by their WCSs: the pixel metrics count that offset as error; "
                                "--align shifts the predictions onto the references' grids")
            params.update(grid_offset_px_median=round(median, 4), grid_offset_px_max=round(worst, 4))
        return params, warnings
