"""The pipelines behind the commands: each reads what the previous step wrote.

* :mod:`~survey2survey.pipelines.translate` -- ``s2s translate`` (with its worker steps in
  ``translate_steps`` and its process schedule in ``translate_schedule``);
* :mod:`~survey2survey.pipelines.emulate` -- ``s2s emulate-noise``.

``s2s export`` is :func:`survey2survey.runtime.export.export_model`.  Import the
submodule you need (this ``__init__`` imports nothing).
"""
