"""A learned model against the physics translation, both ways, on fresh simulated pairs with truth.

Used by ``bench/residual_accuracy.py`` (numbers) and ``experiments/ship_default.py`` (which
direction of the default model is a network and which the physics).  The pairs are
simulated with a seed that no training set uses, from the population the model was trained
on.  Per direction, for the physics translator and for the model (F = G + NE, what ``s2s
translate`` writes, one draw):

* summed |pred - ref| / (sqrt 2 x the reference's summed noise), per band, median over
  objects (Lin & Fouchez Fig. 5; 1.41 / sqrt 2 = 1 is a perfect translation with its own noise);
* r flux bias of the noise-free translation against the truth, total and in a 2" aperture;
* colour bias (2" aperture colours, prediction vs truth, median, mag);
* high-k noise power of pred - truth over that of ref - truth, r band (k > half Nyquist),
  median over images;
* border: median of the outer 4-pixel frame of pred minus physics's, in target sky sigmas.
"""

from __future__ import annotations

import numpy as np


def _frame(images: np.ndarray, width: int = 4) -> np.ndarray:
    mask = np.ones(images.shape[-2:], bool)
    mask[width:-width, width:-width] = False
    return np.median(images[..., mask], axis=-1)


def simulate_pairs(n: int, seed: int, population: str | dict = "realistic") -> list:
    """``n`` simulated pairs (objects with images and truth) from ``seed``.

    ``population``: a preset name, or the ``config`` of a simulation.json (a training set's:
    the same population, other objects).
    """
    from survey2survey.data.simulate import EARLIER_VALUES, SimulationConfig, simulate_object

    if isinstance(population, dict):  # a field it lacks was not there yet: its value then
        fields = EARLIER_VALUES | {k: tuple(v) if isinstance(v, list) else v for k, v in population.items()
                                   if k not in ("n_paired", "n_unpaired_a", "n_unpaired_b", "seed", "conditions")}
        config = SimulationConfig(n_paired=n, seed=seed, **fields)
    else:
        config = SimulationConfig.for_population(population, n_paired=n, seed=seed)
    return [simulate_object(config, i) for i in range(n)]


def _model_translate(model, direction: str, images: np.ndarray, source, target, seed: int):
    """F = G + NE in model space and the sources' Poisson noise, as ``s2s translate`` makes it, back to
    native; and the noise-free G."""
    import torch

    from survey2survey.surveys import to_model_space, to_native
    from survey2survey.translators.learned import add_source_noise, source_noise_survey

    spec = model.config["directions"][direction]
    g = model.modules[spec["generator"]]
    ne = model.modules.get(spec.get("noise_emulator") or "")
    x = torch.from_numpy(to_model_space(images, source))
    torch.manual_seed(seed)
    with torch.no_grad():
        clean = torch.cat([g(chunk) for chunk in x.split(16)])
        noisy = clean
        if ne is not None:
            z1, z2 = ne.sample_inputs(len(clean), clean.shape[-2], clean.shape[-1])
            noisy = clean + ne(z1, z2)
    noisy = noisy.numpy()
    sky = source_noise_survey(target) if ne is not None else None
    if sky is not None:
        keys = np.random.default_rng(seed).integers(0, 2**62, len(noisy))
        noisy = add_source_noise(noisy[:, None], keys, target, sky)[:, 0]
    return to_native(noisy, target), to_native(clean.numpy(), target)


def _centre(images: np.ndarray) -> np.ndarray:
    """The central square of a third of the side of each (N, B, H, W) image (the galaxy)."""
    h = min(images.shape[-2:]) // 3
    y0, x0 = (images.shape[-2] - h) // 2, (images.shape[-1] - h) // 2
    return images[..., y0 : y0 + h, x0 : x0 + h]


def _hk_ratio(diff: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Per band, the median over images of the high-k power of ``diff`` over that of ``noise``."""
    from survey2survey.physics.noise import high_k_power

    return np.array([np.median(high_k_power(diff[:, b]) / high_k_power(noise[:, b])) for b in range(diff.shape[1])])


def _scores(pred, clean, ref, truth, tgt, physics_pred=None) -> dict:
    from survey2survey.metrics.apertures import aperture_sum
    from survey2survey.metrics.base import MetricContext
    from survey2survey.metrics.colour import ColourMetric
    from survey2survey.physics.noise import corner_squares, high_k_power

    floor = np.sqrt(2.0) * np.abs(ref - truth).sum(axis=(2, 3))
    r = tgt.band_index("r")
    radius = 2.0 / tgt.pixel_scale
    aper = [aperture_sum(c[r], radius) / aperture_sum(t[r], radius) - 1 for c, t in zip(clean, truth)]
    colour = ColourMetric(MetricContext(bands=tgt.bands, pixel_scale=tgt.pixel_scale))
    colour.update(pred, truth, truth)
    res = colour.result()
    out = {
        "ratio": np.median(np.abs(pred - ref).sum(axis=(2, 3)) / floor, axis=0),
        "total": float(np.median(clean[:, r].sum(axis=(1, 2)) / truth[:, r].sum(axis=(1, 2)) - 1)),
        "aper": float(np.median(aper)),
        "colour": {k: v["colour_bias"] for k, v in res.values.items() if v.get("colour_bias") is not None},
        # median over images: a few bright stars' unresolved cores would dominate a mean
        "noise_hk": float(np.median(high_k_power(pred[:, r] - truth[:, r]) / high_k_power(ref[:, r] - truth[:, r]))),
        # the same on the sky (four corners) and on the galaxy (the centre), per band
        "noise_hk_sky": _hk_ratio(corner_squares(pred - truth), corner_squares(ref - truth)),
        "noise_hk_galaxy": _hk_ratio(_centre(pred - truth), _centre(ref - truth)),
    }
    if physics_pred is not None:
        sky = np.median(np.abs(ref[:, r] - truth[:, r])) * 1.4826
        out["border"] = float(np.median((_frame(pred[:, r]) - _frame(physics_pred[:, r])) / sky))
    return out


def compare(model, objects: list, seed: int) -> dict:
    """Per direction of ``model`` (a loaded model): physics and model scores on ``objects``.

    Returns ``{direction: {"n": objects used, "physics": scores, "model": scores}}``, scores
    as :func:`_scores` (``ratio`` per band, ``total``, ``aper``, ``colour``, ``noise_hk``, and per
    band ``noise_hk_sky`` and ``noise_hk_galaxy``,
    and for the model ``border``).
    """
    from survey2survey.fits_io import make_wcs
    from survey2survey.physics.translator import PhysicsTranslator
    from survey2survey.surveys import get_survey

    out = {}
    for direction, spec in model.config["directions"].items():
        if spec.get("translator") == "physics":
            continue
        source, target = (get_survey(s) for s in direction.split("->"))
        phys = PhysicsTranslator(source, target)
        rows = {"pred": [], "clean": [], "ref": [], "truth": [], "src": []}
        for i, obj in enumerate(objects):
            obs = obj.observations[source.name]
            wcs = make_wcs(obs.ra_center, obs.dec_center, source.pixel_scale, obj.truth[source.name].shape[1:])
            pred, _, _ = phys.translate(obj.image(source.name), source.bands, wcs, seed=i)
            if pred.shape != obj.truth[target.name].shape:
                continue  # footprints of the two grids differ by a rounding
            clean, _, _ = phys.translate(obj.image(source.name), source.bands, wcs, seed=i, noise=False)
            for key, value in (("pred", pred), ("clean", clean), ("ref", obj.image(target.name)),
                               ("truth", obj.truth[target.name]), ("src", obj.image(source.name))):
                rows[key].append(value)
        ref, truth = np.array(rows["ref"]), np.array(rows["truth"])
        p_pred, p_clean = np.array(rows["pred"]), np.array(rows["clean"])
        m_pred, m_clean = _model_translate(model, direction, np.array(rows["src"]), source, target, seed)
        out[direction] = {"n": len(ref), "target": target,
                          "physics": _scores(p_pred, p_clean, ref, truth, target),
                          "model": _scores(m_pred, m_clean, ref, truth, target, physics_pred=p_pred)}
    return out


def report(results: dict) -> str:
    """Lines of text: per direction, physics and model side by side."""
    lines = []
    for direction, res in results.items():
        bands = res["target"].bands
        lines.append(f"{direction}: {res['n']} objects")
        for name in ("physics", "model"):
            s = res[name]
            lines.append(f"  {name:8s} sum|pred-ref|/floor " + " ".join(f"{b} {v:.3f}" for b, v in zip(bands, s["ratio"]))
                         + f"  (sum {s['ratio'].sum():.3f})")
            lines.append(f"  {'':8s} r flux bias total {s['total']:+.4f}, 2\" aperture {s['aper']:+.4f}; colour bias "
                         + ", ".join(f"{k} {v:+.3f}" for k, v in s["colour"].items())
                         + f"; high-k noise pred/ref {s['noise_hk']:.3f}"
                         + (f"; border - physics {s['border']:+.3f} sky sigma" if "border" in s else ""))
            lines.append(f"  {'':8s} high-k noise pred/ref on the sky " + " ".join(f"{b} {v:.2f}" for b, v in zip(bands, s["noise_hk_sky"]))
                         + "; on the galaxy " + " ".join(f"{b} {v:.2f}" for b, v in zip(bands, s["noise_hk_galaxy"])))
        lines.append(f"  model vs physics: summed ratio {100 * gain(res):+.1f} % below physics; below it in "
                     f"{int((res['model']['ratio'] < res['physics']['ratio']).sum())} of {len(bands)} bands")
    return "\n".join(lines)


def gain(res: dict) -> float:
    """1 - (model's summed ratio over bands) / (physics's): > 0 when the model is better."""
    return float(1 - res["model"]["ratio"].sum() / res["physics"]["ratio"].sum())
