"""Change a finished model's physics-residual generators without training (the ``add_*`` scripts)."""

from __future__ import annotations

import copy


def modify_generators(model_dir, out, change, record: str, nothing: str, overwrite: bool = False) -> list[str]:
    """Load ``model_dir``, call ``change(direction, spec, generator)`` on each
    :class:`~survey2survey.nets.residual.PhysicsResidualGenerator` (it returns whether it changed
    it), and save the model to ``out`` with ``config[record] = {"directions": [...]}``; the
    directions changed.  Nothing changed: SystemExit with ``nothing``."""
    from survey2survey.model import load_model, model_directions, save_model
    from survey2survey.nets.residual import PhysicsResidualGenerator

    loaded = load_model(model_dir, device="cpu")
    changed = [direction for direction, spec in model_directions(loaded.config).items()
               if isinstance(generator := loaded.modules.get(spec.generator or ""), PhysicsResidualGenerator)
               and change(direction, spec, generator)]
    if not changed:
        raise SystemExit(f"{model_dir}: {nothing}")
    config = copy.deepcopy(loaded.config)
    config[record] = {"directions": changed}
    save_model(out, dict(loaded.modules), config, overwrite=overwrite)
    return changed
