"""Former home of translation; kept only as the old import path of two runtime switches.

New code imports :mod:`survey2survey.pipelines.translate` (the pipeline) and
:mod:`survey2survey.runtime.device` (these switches).
"""

from survey2survey.runtime.device import resolve_device, set_cuda_fp32_precision

__all__ = ["resolve_device", "set_cuda_fp32_precision"]
