"""The runtime layer: a model on a device, and the one translation graph F = G + NE.

* :mod:`~survey2survey.runtime.device` -- device choice, precision (the TF32 switch
  :func:`~survey2survey.runtime.device.set_cuda_fp32_precision`), default batch sizes;
* :mod:`~survey2survey.runtime.seeds` -- reproducible noise seeds z1, z2 and latent codes
  from per-object keys;
* :mod:`~survey2survey.runtime.graph` -- :class:`TranslationGraph` (F = G + NE, written
  once) and the blank-sky noise of ``emulate-noise``;
* :mod:`~survey2survey.runtime.export` -- the graph exported to ONNX, and ONNX Runtime
  sessions;
* :mod:`~survey2survey.runtime.engines` -- the torch and onnx engines that run a graph on
  batches.

Imports flow one way (``device``, ``seeds`` -> ``graph`` -> ``export`` -> ``engines``);
this package imports only from ``errors``, ``surveys`` and ``model`` below it.  Its
``__init__`` imports nothing heavy: import the submodule you need.
"""
