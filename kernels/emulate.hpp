// Host emulation of the CUDA built-ins the policy kernels use, so that the very same
// kernel sources run on a CPU (g++) in CI, where there is no GPU.
//
// A launch runs the blocks one after another; the threads of a block are coroutines
// (ucontext) on one OS thread, switched at __syncthreads(), so shared memory (static
// here: one block lives at a time) and barriers behave as on the device. Float
// intrinsics are the plain IEEE operations (compile with -ffp-contract=off).
#pragma once
#include <ucontext.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

#include "host_intrinsics.hpp"

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

namespace fp_emulate {
inline dim3 thread_index, block_index, block_dim, grid_dim;

struct Thread {
    ucontext_t context;
    std::vector<char> stack;
    bool done = false;
};

inline ucontext_t scheduler;
inline std::vector<Thread> threads;
inline std::size_t current = 0;
inline std::function<void()> body;

inline void trampoline() {
    body();
    threads[current].done = true;
}

inline void syncthreads() { swapcontext(&threads[current].context, &scheduler); }

// Run `kernel` over the grid as the device would (one block at a time).
inline void launch(dim3 grid, dim3 block, std::function<void()> kernel) {
    body = std::move(kernel);
    grid_dim = grid;
    block_dim = block;
    const std::size_t count = std::size_t(block.x) * block.y * block.z;
    threads.resize(count);
    for (auto& t : threads)
        if (t.stack.size() < (1u << 16)) t.stack.resize(1u << 16);
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                block_index = {bx, by, bz};
                for (std::size_t i = 0; i < count; ++i) {
                    Thread& t = threads[i];
                    t.done = false;
                    getcontext(&t.context);
                    t.context.uc_stack.ss_sp = t.stack.data();
                    t.context.uc_stack.ss_size = t.stack.size();
                    t.context.uc_link = &scheduler;
                    makecontext(&t.context, trampoline, 0);
                }
                // Round-robin: each pass runs every live thread up to its next barrier.
                for (bool live = true; live;) {
                    live = false;
                    for (std::size_t i = 0; i < count; ++i) {
                        if (threads[i].done) continue;
                        current = i;
                        thread_index = {unsigned(i % block.x), unsigned(i / block.x % block.y),
                                        unsigned(i / (std::size_t(block.x) * block.y))};
                        swapcontext(&scheduler, &threads[i].context);
                        live = live || !threads[i].done;
                    }
                }
            }
}

template <typename... A>
void launch(void (*kernel)(A...), dim3 grid, dim3 block, void** args) {
    launch(grid, block, [=] { fp_host::call(kernel, args, std::index_sequence_for<A...>{}); });
}
}  // namespace fp_emulate

#define threadIdx (fp_emulate::thread_index)
#define blockIdx (fp_emulate::block_index)
#define blockDim (fp_emulate::block_dim)
#define gridDim (fp_emulate::grid_dim)
#define __syncthreads() fp_emulate::syncthreads()
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

// Word accesses of the runs (runs.cuh: fp_load32, fp_store_vector), counted so the tests can
// see which path a launch took: [0] 32-bit loads, [1] vector stores, [2] either at an address
// not aligned to its size (a fault on a device). fp_emulate_word_accesses copies and resets them.
#define FP_COUNT_WORDS 1
namespace fp_emulate {
inline long long word_accesses[3];
inline void count_word(int kind, const void* p, std::size_t size) {
    ++word_accesses[kind];
    if (reinterpret_cast<std::uintptr_t>(p) % size) ++word_accesses[2];
}
}  // namespace fp_emulate
extern "C" void fp_emulate_word_accesses(long long* out) {
    for (int i = 0; i < 3; ++i) out[i] = fp_emulate::word_accesses[i], fp_emulate::word_accesses[i] = 0;
}

// Exported entry point per kernel: fp_emulate_<name>(grid xyz, block xyz, args); returns 0.
#define FP_EMULATE(name)                                                                          \
    extern "C" int fp_emulate_##name(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, \
                                     unsigned bz, void** args) {                                  \
        fp_emulate::launch(name, dim3{gx, gy, gz}, dim3{bx, by, bz}, args);                       \
        return 0;                                                                                 \
    }
