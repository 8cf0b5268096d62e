"""A tiny prepared dataset directory, written the way ``s2s prepare`` writes one.

Used by the training tests so that they do not depend on the simulator: the arrays
are smooth synthetic "galaxies" (a Gaussian blob per band) plus Gaussian noise, already
in model space, at the real sizes of the shipped pair (a = sdss 64 px, b = cfht 136 px,
5 bands).  The layout follows ``docs/dev/CONTRACTS.md`` (prepared dataset directory).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from survey2survey import __version__
from survey2survey.surveys import get_survey

__all__ = ["make_tiny_dataset"]


def _galaxies(rng: np.random.Generator, n: int, size: int, noise: float, params: np.ndarray) -> np.ndarray:
    """(n, 5, size, size) float32: one elliptical Gaussian per image and band, plus noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5  # (size, size), field units
    out = np.empty((n, 5, size, size), np.float32)
    for i in range(n):
        amp, width, q, theta = params[i]
        c, s = np.cos(theta), np.sin(theta)
        u, v = c * xx + s * yy, (-s * xx + c * yy) / q
        blob = amp * np.exp(-(u**2 + v**2) / (2 * width**2))  # (size, size)
        band_scale = np.array([0.3, 0.7, 1.0, 1.1, 0.9], np.float32)[:, None, None]
        out[i] = blob[None] * band_scale + noise * rng.standard_normal((5, size, size), dtype=np.float32)
    return out


def make_tiny_dataset(
    root: str | Path,
    n_unpaired: int = 16,
    n_pairs: int = 8,
    n_test: int = 4,
    seed: int = 0,
    regridded: bool = False,
    sizes: tuple[int, int] | None = None,
) -> Path:
    """Write a prepared dataset directory with tiny synthetic model-space arrays.

    Parameters
    ----------
    root : path
        Directory to create (its parents are made too).
    n_unpaired : int
        Unpaired cutouts per domain.
    n_pairs, n_test : int
        Paired training and test cutouts (row i of ``train_a`` and ``train_b`` is the
        same synthetic galaxy drawn at both pixel scales).
    seed : int
        Seed of the arrays' random content.
    regridded : bool
        Also write the ``*_b_on_a.npy`` arrays (b resampled onto a's 64 px grid).
    sizes : (int, int), optional
        Cutout sides of a and b.  Default: the real sdss (64) and cfht (136).  Other
        sizes make two small made-up surveys ``small_a`` and ``small_b`` with the same
        bands and pixel scales, for tests that need many iterations on a slow CPU.

    Returns
    -------
    Path
        The dataset directory.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    a, b = get_survey("sdss"), get_survey("cfht")
    if sizes is not None and tuple(sizes) != (a.cutout_size, b.cutout_size):
        a = dataclasses.replace(a, name="small_a", cutout_size=int(sizes[0]), aliases=())
        b = dataclasses.replace(b, name="small_b", cutout_size=int(sizes[1]), aliases=())
    sa, sb = a.cutout_size, b.cutout_size

    def params(n: int) -> np.ndarray:
        return np.stack(
            [rng.uniform(0.5, 2.0, n), rng.uniform(0.05, 0.15, n), rng.uniform(0.5, 1.0, n), rng.uniform(0, np.pi, n)],
            axis=1,
        ).astype(np.float32)

    arrays: dict[str, np.ndarray] = {}
    arrays["unpaired_a"] = _galaxies(rng, n_unpaired, sa, 0.10, params(n_unpaired))
    arrays["unpaired_b"] = _galaxies(rng, n_unpaired, sb, 0.05, params(n_unpaired))
    for split, n in (("train", n_pairs), ("test", n_test)):
        p = params(n)
        arrays[f"{split}_a"] = _galaxies(rng, n, sa, 0.10, p)
        arrays[f"{split}_b"] = _galaxies(rng, n, sb, 0.05, p)
    if regridded:
        # Nearest-sample regridding is enough for a test set: only the shape matters.
        take = np.linspace(0, sb - 1, sa).round().astype(int)
        for name in ("unpaired_b", "train_b", "test_b"):
            arrays[f"{name}_on_a"] = np.ascontiguousarray(arrays[name][:, :, take][:, :, :, take])

    digest = hashlib.sha256()
    meta = {}
    for name, arr in arrays.items():
        np.save(root / f"{name}.npy", arr)
        digest.update(name.encode() + arr.tobytes())
        meta[name] = {"file": f"{name}.npy", "shape": list(arr.shape)}
    info = {
        "format": "s2s-dataset/1",
        "version": __version__,
        "surveys": {"a": a.to_dict(), "b": b.to_dict()},
        "bands": {"a": list(a.bands), "b": list(b.bands)},
        "transform": "lin2021-stretch",
        "counts": {"unpaired_a": n_unpaired, "unpaired_b": n_unpaired, "train": n_pairs, "test": n_test},
        "arrays": meta,
        "fingerprint": digest.hexdigest(),
        "regridded": regridded,
        "created": "2024-01-01T00:00:00+00:00",
        "options": {"source": "tests/_tiny_dataset.py", "seed": seed},
    }
    (root / "dataset.json").write_text(json.dumps(info, indent=2))
    (root / "manifest.csv").write_text("id,ra,dec,survey,domain,split,index,source_file\n")
    (root / "report.csv").write_text("file,reason\n")
    return root
