"""Backends that apply :class:`~fastpolicy.params.PolicyParams` to image batches.

* ``"numpy"`` — :mod:`fastpolicy.reference`, the specification (slow; tests and debugging).
* ``"dali"`` — DALI operators with per-sample selection (:mod:`.dali_ops`, :mod:`.dali_stage`).
* ``"cupy"`` — fastpolicy's fused CUDA kernels (``kernels/``): :mod:`.kernel_ops` (registry
  entries, generated dispatch), :mod:`.kernel_slots` (host packing), :mod:`.kernel_build`
  (NVRTC / CuPy / the host emulator), :mod:`.kernel_stage` (the stage, :func:`apply_torch`).

Every backend is ``stage.apply(images, params) -> images`` on uint8 NHWC batches.
DALI- and CuPy-dependent modules are imported lazily, so ``import fastpolicy`` works without DALI.
"""
