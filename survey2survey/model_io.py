"""Former home of model save/load; kept only as an old import path.

New code imports :mod:`survey2survey.model`.
"""

from survey2survey.model.store import CONFIG_NAME, MODEL_FORMAT, WEIGHTS_NAME, LoadedModel, load_model, save_model, weights_sha256

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "MODEL_FORMAT", "LoadedModel", "save_model", "load_model", "weights_sha256"]
