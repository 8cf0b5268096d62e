"""The noise spectrum of the registry's correlated-noise model (``noise_correlation``).

Kept apart from :mod:`.noise` so that :mod:`.psf` (which the registry uses for the depth
-> sigma conversion) can read it without importing the registry back.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kernel_spectrum"]


def kernel_spectrum(shape: tuple[int, int], correlation: float) -> np.ndarray:
    """Unit power spectrum (H, W) of white noise smoothed by the separable ``[c, 1, c]`` kernel."""
    c = float(correlation)
    fy, fx = np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1])
    ky = (1.0 + 2.0 * c * np.cos(2 * np.pi * fy)) ** 2 / (1.0 + 2.0 * c * c)
    kx = (1.0 + 2.0 * c * np.cos(2 * np.pi * fx)) ** 2 / (1.0 + 2.0 * c * c)
    return ky[:, None] * kx[None, :]
