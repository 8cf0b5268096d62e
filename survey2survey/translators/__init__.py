"""Translators: what turns a source-survey cutout into a target-survey cutout.

* :mod:`~survey2survey.translators.base` -- the interface the translate pipeline runs
  (:class:`~survey2survey.translators.base.Translator`), light: no torch;
* :mod:`~survey2survey.translators.learned` -- a trained model (F = G + NE) as a
  translator (imports the model and runtime layers).
"""

from survey2survey.translators.base import Geometry, Prepared, Translator, resample_mask

__all__ = ["Geometry", "Prepared", "Translator", "resample_mask"]
