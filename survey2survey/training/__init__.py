"""The parts of ``s2s train`` that are not the recipe itself.

:mod:`survey2survey.train` reads top to bottom as the paper's recipe; what it leans on
lives here, one concept per module:

* :mod:`~survey2survey.training.options` -- what a run can be told, and the checks on it;
* :mod:`~survey2survey.training.checkpoints` -- atomic checkpoints, and resuming from them;
* :mod:`~survey2survey.training.log` -- ``losses.csv`` and the progress bar;
* :mod:`~survey2survey.training.memory` -- will one iteration fit (a real probe), and what
  an out-of-memory failure is.

Importing this package loads no numerical library.
"""
