// What both host builds of the kernels share (emulate.hpp: every thread, for tests;
// host.hpp: one thread per block, in parallel, for speed): CUDA's float intrinsics as plain
// IEEE operations (compile with -ffp-contract=off, so they round like the device's
// __fadd_rn & co.), atomicAdd, and calling a kernel with cudaLaunchKernel-style arguments.
#pragma once
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

// atomicAdd, as the kernels use it: a host build never runs two threads of a block at once
// (the emulator switches them at barriers only) and never two blocks that add to one place
// (the native build runs one block per sample), so a plain addition is the atomic one.
template <typename T>
inline T atomicAdd(T* address, T value) {
    const T old = *address;
    *address = old + value;
    return old;
}
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

namespace fp_host {
// Call `kernel` with its arguments read from `args[i]` (pointers to each value), as
// cudaLaunchKernel does.
template <typename... A, std::size_t... I>
void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}
}  // namespace fp_host
