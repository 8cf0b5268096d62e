"""The model layer: model directories on disk and what they translate.

* :mod:`~survey2survey.model.store` -- save and load a model directory
  (``config.json`` + ``weights.safetensors``), never executing code from the files;
* :mod:`~survey2survey.model.directions` -- the directions a model translates, the
  surveys it was trained with and the grids its networks run on.

Imports flow one way: ``surveys``, ``fits_io`` -> ``model`` -> ``runtime`` ->
``translators`` -> ``pipelines`` -> ``commands``.  Importing this package does not
import torch (the functions that need it import it when called).
"""

from survey2survey.model.directions import (
    Direction,
    default_model_dir,
    direction_shapes,
    find_noise_emulator,
    model_directions,
    physics_directions,
)
from survey2survey.model.store import (
    CONFIG_NAME,
    MODEL_FORMAT,
    WEIGHTS_NAME,
    LoadedModel,
    leave_to_physics,
    load_model,
    save_model,
    weights_sha256,
)

__all__ = [
    "leave_to_physics",
    "physics_directions",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "MODEL_FORMAT",
    "LoadedModel",
    "load_model",
    "save_model",
    "weights_sha256",
    "Direction",
    "default_model_dir",
    "model_directions",
    "direction_shapes",
    "find_noise_emulator",
]
