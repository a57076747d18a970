// The policy stage's translation unit: statistics, lookup tables, the per-pixel apply and the
// blur passes.
// Compiled with NVRTC (cupy.RawModule) on a GPU, with NVRTC alone in CI, and by the
// host emulator (emulate.hpp) for CPU tests. The including code first defines FP_LUTS
// and FP_APPLIES, generated from the op registry by fastpolicy/backends/kernel_ops.py.
#include "stats.cu"
#include "luts.cu"
#include "apply.cu"
#include "fused.cu"
#include "blur.cu"
