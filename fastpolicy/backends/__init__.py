"""Backends that apply :class:`~fastpolicy.params.PolicyParams` to image batches.

:mod:`.stage` is the one protocol (``stage.apply(images, params, out, in_rows)`` → a torch
tensor of the asked dtype and layout) and the one factory, :func:`.stage.make_stage`;
:mod:`.pack` is the one packer of per-slot arguments (one buffer, one upload). Behind them:

* ``"numpy"`` — :mod:`fastpolicy.reference`, the specification (slow; tests and debugging).
* ``"dali"`` — DALI operators with per-sample selection (:mod:`.dali_ops`, :mod:`.dali_stage`).
* ``"cupy"``, ``"native"``, ``"emulated"`` — fastpolicy's kernels (``kernels/``):
  :mod:`.kernel_ops` (registry entries, generated dispatch), :mod:`.kernel_build` (NVRTC /
  CuPy / the host builds), :mod:`.kernel_stage` (the stage, :func:`~.kernel_stage.apply_torch`).

DALI- and CuPy-dependent modules are imported lazily, so ``import fastpolicy`` works without DALI.
"""
