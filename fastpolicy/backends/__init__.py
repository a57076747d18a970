"""Backends that apply :class:`~fastpolicy.params.PolicyParams` to image batches.

* ``"numpy"`` — :mod:`fastpolicy.reference`, the specification (slow; tests and debugging).
* ``"dali"`` — DALI operators with per-sample selection (:mod:`.dali_ops`, :mod:`.dali_stage`).

Every backend is ``stage.apply(images, params) -> images`` on uint8 NHWC batches.
DALI-dependent modules are imported lazily, so ``import fastpolicy`` works without DALI.
"""
