"""Backends that apply :class:`~fastpolicy.params.PolicyParams` to image batches.

* :mod:`.protocol` — the one stage protocol (``stage.apply(images, params, out)`` → a torch
  tensor of the asked dtype and layout; :class:`~.protocol.OutputSpec`, :func:`~.protocol.copy_rows`,
  :func:`~.protocol.finish`); it imports no backend.
* :mod:`.registration` — backends register themselves (name, devices, availability,
  builder, priority, label, capabilities); :mod:`.stage` — the one factory,
  :func:`~.stage.make_stage` and :func:`~.stage.resolve_backend`, lookups in that table.
* :mod:`.pack` — the one packer of per-slot arguments (one buffer, one upload); each
  backend declares its slot fields (:class:`~.pack.SlotFields`).

The registered backends, each registering itself next to its code:

* ``"numpy"`` — :mod:`.reference_stage`: :mod:`fastpolicy.reference`, the specification
  (slow; tests and debugging).
* ``"dali"`` — :mod:`.dali_stage`: DALI operators with per-sample selection (:mod:`.dali_ops`).
* ``"native"``, ``"emulated"`` — :mod:`.kernel_host`: fastpolicy's kernels (``kernels/``)
  built for the host, fast (g++/OpenMP) or with every CUDA thread emulated, run by the
  driver :mod:`.kernel_stage` that packs and launches every build.
* ``"cupy"`` — :mod:`.kernel_cuda`: the same kernels on a CUDA GPU (pinned upload, torch's
  stream, :func:`~.kernel_cuda.apply_torch`).

Behind the kernels: :mod:`.kernel_ops` (the op implementations ``"kernels"`` attached to
the registry, generated dispatch), :mod:`.kernel_pack` (their slot fields),
:mod:`.kernel_build` (NVRTC / CuPy / the native and emulated host builds).

DALI and CuPy are imported only when a stage that needs them is built, so
``import fastpolicy`` works without them.
"""
