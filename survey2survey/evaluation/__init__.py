"""The parts of ``s2s evaluate`` around the measuring: matching files, and the report.

:mod:`survey2survey.evaluate` is the pipeline (find, match, measure, aggregate, write);
:mod:`~survey2survey.evaluation.matching` pairs predictions with references and
:mod:`~survey2survey.evaluation.report` writes what was measured.
"""
