// The policy kernels as a fast CPU stage: the very same sources, one thread per block, the
// blocks run in parallel by OpenMP (compile with -fopenmp -ffp-contract=off).
//
// Every kernel of the stage is a grid-stride loop, so a launch with blockDim = 1 covers
// all the work; with one thread a block's barriers hold trivially (__syncthreads is
// empty) and its shared memory is that OS thread's own (thread_local). The caller
// launches so that no two blocks write the same output: one block per sample (grid.y)
// for fp_histograms and fp_apply, one per (sample, channel) table for fp_build_luts.
#pragma once
#include <cstdint>

#define FP_HOST_LOOPS 1  // fp_apply: a per-sample loop with the apply function inlined (apply.cu)

#include "host_intrinsics.hpp"

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

namespace fp_host {
inline thread_local dim3 block_index, grid_dim;  // per OS thread: launches from several threads at once
inline const dim3 thread_index{0, 0, 0}, block_dim{1, 1, 1};

// Run every block of `grid` (blockDim must be 1) on the OpenMP threads.
template <typename... A>
int launch(void (*kernel)(A...), dim3 grid, dim3 block, void** args) {
    if (block.x != 1 || block.y != 1 || block.z != 1) return 1;
    const long long blocks = (long long)grid.x * grid.y * grid.z;
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)  // one block: no team to wake
    for (long long b = 0; b < blocks; ++b) {
        grid_dim = grid;
        block_index = {unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / ((long long)grid.x * grid.y))};
        call(kernel, args, std::index_sequence_for<A...>{});
    }
    return 0;
}
}  // namespace fp_host

#define threadIdx (fp_host::thread_index)
#define blockIdx (fp_host::block_index)
#define blockDim (fp_host::block_dim)
#define gridDim (fp_host::grid_dim)
#define __syncthreads() ((void)0)
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static thread_local

// Exported entry point per kernel: fp_host_<name>(grid xyz, block xyz, args); returns 1
// (and runs nothing) unless the block is one thread.
#define FP_HOST(name)                                                                                \
    extern "C" int fp_host_##name(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,   \
                                  unsigned bz, void** args) {                                        \
        return fp_host::launch(name, dim3{gx, gy, gz}, dim3{bx, by, bz}, args);                      \
    }
