"""Small models and inputs for the tests of ``translate``, ``emulate-noise`` and ``export``.

* :func:`make_tiny_model` -- the paper's networks at the shipped sizes (SDSS 64 px <->
  CFHT 136 px) with seeded random weights, saved with ``survey2survey.model.save_model``: the pipeline does not
  care whether the weights were trained;
* :func:`method_model` -- any training method's model, its networks built by the method
  (``build()``) with random weights and written as ``s2s train`` writes a model directory,
  without training it;
* :func:`galaxy`, :func:`write_inputs` -- native-unit cutouts with a WCS.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from survey2survey.model import save_model
from survey2survey.fits_io import make_wcs, write_cutout
from survey2survey.nets import NoiseEmulator, generator_cfht_to_sdss, generator_sdss_to_cfht
from survey2survey.surveys import get_survey

__all__ = ["make_tiny_model", "method_model", "galaxy", "write_inputs"]

SDSS, CFHT = get_survey("sdss"), get_survey("cfht")


def make_tiny_model(root, seed=0, noise=True):
    """Both directions of the paper's model with seeded random weights, saved with survey2survey.model.save_model."""
    torch.manual_seed(seed)
    modules = {"generator_sdss_to_cfht": generator_sdss_to_cfht(), "generator_cfht_to_sdss": generator_cfht_to_sdss()}
    directions = {
        "sdss->cfht": {"generator": "generator_sdss_to_cfht", "noise_emulator": None},
        "cfht->sdss": {"generator": "generator_cfht_to_sdss", "noise_emulator": None},
    }
    if noise:
        modules.update(noise_emulator_cfht=NoiseEmulator(5), noise_emulator_sdss=NoiseEmulator(5))
        directions["sdss->cfht"]["noise_emulator"] = "noise_emulator_cfht"
        directions["cfht->sdss"]["noise_emulator"] = "noise_emulator_sdss"
    config = {"name": "tiny", "method": "ours", "surveys": {"a": SDSS.to_dict(), "b": CFHT.to_dict()},
              "directions": directions}
    return save_model(root, modules, config)


def method_model(root: str | Path, name: str, seed: int = 0, direction: str | None = None, **options) -> Path:
    """A model directory of training method ``name`` (sdss = a, cfht = b) with random weights.

    The networks come from the method's own ``build()`` (the last step of a multi-step
    method) and the directory is written by ``s2s train``'s writer, so that config.json
    ("regridded", "sizes", "latent_dim", ...) is what a trained model would have.
    ``options`` go to the method (e.g. ``n_blocks=1`` for a smaller ResNet).
    """
    from survey2survey.methods import get_method
    from survey2survey.train import TrainOptions, _write_model

    cls = get_method(name)
    torch.manual_seed(seed)
    if cls.one_way:
        options["direction"] = direction
    method = cls({"a": SDSS, "b": CFHT}, step=cls.steps[-1], options=options)
    ds = SimpleNamespace(surveys={"a": SDSS, "b": CFHT}, info={"counts": {}}, fingerprint="0" * 64,
                         root=Path("random-weights"))
    root = Path(root)
    _write_model(root, ds, method, {}, TrainOptions(method=name))
    return root


def galaxy(survey, seed, ra=150.0, dec=2.0):
    """(5, n, n) native-unit cube: a Gaussian blob plus sky noise, and its WCS."""
    rng = np.random.default_rng(seed)
    n = survey.cutout_size
    yy, xx = np.mgrid[0:n, 0:n] / n - 0.5
    blob = np.exp(-(xx**2 + yy**2) / (2 * 0.08**2)) * rng.uniform(2, 20)  # nanomaggies per arcsec^2-ish
    flux = blob[None] * np.array([0.3, 0.7, 1.0, 1.1, 0.9])[:, None, None] + 0.05 * rng.standard_normal((5, n, n))
    return (flux / survey.flux_factor).astype(np.float32), make_wcs(ra, dec, survey.pixel_scale, (n, n))


def write_inputs(directory, survey, n, start=0):
    """``n`` cutouts ``J<i>.fits`` of ``survey`` in ``directory``; returns their paths."""
    paths = []
    for i in range(start, start + n):
        data, wcs = galaxy(survey, i, ra=150 + i * 0.01)
        paths.append(write_cutout(Path(directory) / f"J{i:04d}.fits", data, survey, wcs=wcs))
    return paths
