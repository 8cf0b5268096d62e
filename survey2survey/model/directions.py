"""A model's translation directions and the grids its networks run on.

A model directory (:mod:`survey2survey.model.store`) records in ``config.json`` which
directions it translates (``"sdss->cfht"``), the generator and noise emulator of each,
and the surveys as they were at training time.  This module turns that record into
:class:`Direction` objects; everything that runs a model reads them from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from survey2survey.errors import ModelError, S2SError
from survey2survey.surveys import Survey, get_survey

__all__ = [
    "Direction",
    "default_model_dir",
    "model_directions",
    "direction_shapes",
    "find_noise_emulator",
    "physics_directions",
]


def default_model_dir() -> Path:
    """The model used when none is given: ``$S2S_MODEL``, else the shipped ``models/sdss-cfht``.

    Raises
    ------
    ModelError
        When neither exists.
    """
    env = os.environ.get("S2S_MODEL")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ModelError(f"S2S_MODEL={env}: model directory not found")
        return path
    shipped = Path(__file__).resolve().parents[2] / "models" / "sdss-cfht"
    if (shipped / "config.json").is_file():
        return shipped
    raise ModelError(
        "no model found: give --model DIR, set S2S_MODEL, or train one with `s2s train` "
        f"(the shipped model would be in {shipped.parent.name}/{shipped.name}/)"
    )


@dataclass(frozen=True)
class Direction:
    """One translation direction of a model (``config.json`` "directions" entry).

    Attributes
    ----------
    latent_dim : int or None
        Size of the latent code z of a stochastic generator ``G(x, z)`` (augcgan).
    source_grid, target_grid : Survey or None
        For models trained on a regridded set (cyclegan, augcgan: b regridded onto a's
        grid), the survey whose pixel grid the generator reads or writes when it is not
        the source's or target's own: the cutout is resampled onto it before the model,
        or the model's output resampled from it onto the target's grid.
    """

    name: str
    source: Survey
    target: Survey
    generator: str
    noise_emulator: str | None
    latent_dim: int | None = None
    source_grid: Survey | None = None
    target_grid: Survey | None = None


def model_directions(config: dict) -> dict[str, Direction]:
    """Directions of a model, with the surveys as the model recorded them.

    The model's own survey definitions (``config["surveys"]``) fix the flux scaling it was
    trained with, so they win over the registry's; a survey the config does not describe
    comes from the registry.
    """
    recorded: dict[str, Survey] = {}
    for spec in (config.get("surveys") or {}).values():
        if isinstance(spec, dict) and spec.get("name"):
            try:
                s = Survey.from_dict(spec["name"], spec, "config.json")
            except S2SError as exc:
                raise ModelError(f"config.json: bad survey definition ({exc})") from None
            recorded[s.name] = s
    grid = None  # regridded models: every network works on survey a's grid
    if config.get("regridded"):
        a_spec = (config.get("surveys") or {}).get("a")
        grid = recorded.get(a_spec.get("name")) if isinstance(a_spec, dict) else None
        if grid is None:
            raise ModelError("config.json: a regridded model must describe survey 'a' (whose grid it works on)")
    out: dict[str, Direction] = {}
    for name, parts in (config.get("directions") or {}).items():
        if isinstance(parts, dict) and parts.get("translator") == "physics":
            continue  # translated by the physics translator (physics_directions)
        if "->" not in name or not isinstance(parts, dict) or not parts.get("generator"):
            raise ModelError(f"config.json: direction {name!r} must be 'a->b' with a 'generator'")
        a, b = (s.strip().lower() for s in name.split("->", 1))
        src = recorded.get(a) or get_survey(a)
        tgt = recorded.get(b) or get_survey(b)
        latent = parts.get("latent_dim")
        if latent is not None and (isinstance(latent, bool) or not isinstance(latent, int) or latent < 1):
            raise ModelError(f"config.json: direction {name!r}: latent_dim must be a positive integer, got {latent!r}")
        out[name] = Direction(
            name, src, tgt, parts["generator"], parts.get("noise_emulator") or None, latent,
            source_grid=grid if grid is not None and src.name != grid.name else None,
            target_grid=grid if grid is not None and tgt.name != grid.name else None,
        )
    return out


def physics_directions(config: dict) -> dict[str, str]:
    """Directions a model leaves to the physics translator: ``{"cfht->sdss": reason}``.

    A model's ``config.json`` may say, per direction, ``{"translator": "physics",
    "reason": "..."}``: its default for that direction is the survey physics (it did not
    beat it on the held-out set), not a network.
    """
    out = {}
    directions = config.get("directions")
    for name, parts in (directions.items() if isinstance(directions, dict) else ()):
        if isinstance(parts, dict) and parts.get("translator") == "physics":
            if "->" not in name:
                raise ModelError(f"config.json: direction {name!r} must be 'a->b'")
            out[name.strip().lower()] = str(parts.get("reason") or "")
    return out


def _pair(size) -> tuple[int, int]:
    return (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size), int(size))


def direction_shapes(model, direction: Direction) -> tuple[tuple[int, int], tuple[int, int]]:
    """(H, W) of the generator's input and output for one direction.

    From the generator's ``in_size``/``out_size`` when it has them (the paper's
    generators), else from the grids config.json records (``"sizes"``, written by
    ``s2s train``), else the cutout size of the grid it reads (the source survey's, or for
    a regridded model survey a's) and a probe on the CPU.
    """
    gen = model.modules[direction.generator]
    in_size, out_size = getattr(gen, "in_size", None), getattr(gen, "out_size", None)
    recorded = _recorded_sizes(model.config)
    src, dst = direction.source.name, direction.target.name
    if in_size is None and out_size is None and src in recorded and dst in recorded:
        return recorded[src], recorded[dst]
    grid = direction.source_grid or direction.source
    in_shape = _pair(in_size) if in_size is not None else (grid.cutout_size,) * 2
    if out_size is not None:
        return in_shape, _pair(out_size)
    import torch

    param = next(gen.parameters())
    args = [torch.zeros((1, direction.source.n_bands, *in_shape), device=param.device)]
    if direction.latent_dim:
        args.append(torch.zeros((1, direction.latent_dim), device=param.device))
    with torch.no_grad():
        probe = gen(*args)
    return in_shape, (int(probe.shape[-2]), int(probe.shape[-1]))


def _recorded_sizes(config: dict) -> dict[str, tuple[int, int]]:
    """Survey name -> (H, W) of the grid the networks run on, from config.json's "sizes"."""
    out = {}
    for side, size in (config.get("sizes") or {}).items():
        spec = (config.get("surveys") or {}).get(side)
        if isinstance(spec, dict) and spec.get("name") and isinstance(size, list) and len(size) == 3:
            if all(isinstance(v, int) and v > 0 for v in size):
                out[str(spec["name"]).lower()] = (size[1], size[2])
    return out


def find_noise_emulator(config: dict, survey: Survey) -> str:
    """Name of the module that emulates ``survey``'s noise in a model's ``config.json``.

    Raises
    ------
    ModelError
        If no direction of the model ends in ``survey`` with a noise emulator.
    """
    found = []
    for direction, parts in config.get("directions", {}).items():
        target = direction.split("->")[-1].strip()
        if target == survey.name and parts.get("noise_emulator"):
            found.append(parts["noise_emulator"])
    if not found:
        have = [d.split("->")[-1] for d, p in config.get("directions", {}).items() if p.get("noise_emulator")]
        raise ModelError(
            f"model {config.get('name', '?')!r} has no noise emulator for survey {survey.name!r}"
            + (f" (it has: {', '.join(sorted(set(have)))})" if have else " (it was trained without noise emulators)")
        )
    return found[0]
