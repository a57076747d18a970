// Shared helpers of the policy kernels: types, PIL's blend and grey conversion, float16.
//
// Every formula here is the NumPy reference's (fastpolicy/reference/color.py), written
// with explicitly rounded float operations (__fadd_rn, __fmul_rn, ...) so that no
// compiler contracts them into fused multiply-adds: the results are bit-exact.
#pragma once

typedef unsigned char fp_u8;
typedef unsigned short fp_u16;
typedef unsigned int fp_u32;
typedef long long fp_i64;

#define FP_FILL 128           // grey of Cutout's square (the warps' fill is a kernel argument)
#define FP_HIST_STRIDE 1024   // per-sample histogram: R, G, B, L (C = 3) or grey at 0 (C = 1)

// A device function compiled once and called (not inlined at every use): NVRTC and ptxas
// time grows with every inlined copy. Host builds leave the choice to the compiler.
// FP_LAUNCH_BOUNDS(threads, blocks): at most `threads` per block, registers for `blocks`
// resident blocks per SM (ptxas's register budget).
// FP_LDG(p): *p through the read-only data cache (ld.global.nc), for images no thread
// writes during the launch, even where the compiler sees only a generic pointer (fields
// read through a pointer to shared memory, inside a called function).
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define FP_NOINLINE __noinline__
#define FP_LAUNCH_BOUNDS(threads, blocks) __launch_bounds__(threads, blocks)
#define FP_LDG(p) __ldg(p)
#else
#define FP_NOINLINE
#define FP_LAUNCH_BOUNDS(threads, blocks)
#define FP_LDG(p) (*(p))
#endif

// for (c = 0; c < channels; ++c) over at most 3 channels, written with a constant trip count
// so the compiler unrolls it and keeps a pixel's fp_u8[3] in registers (indexed by a
// run-time c, it lives in local memory).
#define FP_EACH_CHANNEL(c, channels) for (int c = 0; c < 3; ++c) if (c < (channels))

__device__ __forceinline__ int fp_clip8(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

// Byte offsets of a slot's fields in the packed batch buffer, in this order (the slot's
// `header`, int64[16], written by fastpolicy/backends/kernel_pack.py: HEADER there).
enum FpField {
    FP_CODE,        // int32 [N]: each sample's entry in the op table (0: skipped)
    FP_BOX,         // int32 [N, 4]: Cutout box (y0, x0, y1, x1), half-open
    FP_PARTNER,     // int32 [N]: SamplePairing partner
    FP_LUT_SAMPLES, // int32 [L]: samples that build a table, those with statistics first
    FP_E_CODE,      // int32 [E]: per entry, the index of its apply function in FP_APPLIES
    FP_E_LUT,       // int32 [E]: the table builder's index in FP_LUTS (-1: none)
    FP_E_IVALUE,    // int32 [E]: the builder's integer parameter (Solarize: ceil(threshold); Posterize: bits)
    FP_E_VALUE,     // float32 [E]: the op's value (blend factor of Color, Sharpness, SamplePairing)
    FP_E_FIXED,     // int64 [E, 6]: PIL's 16.16 fixed-point matrix of a warp
    FP_E_SHIFT,     // int32 [E]: row of shift_rows / shift_cols holding a translation's tables
    FP_E_STATS,     // int32 [E]: 1 where the entry's table is built from statistics of the slot input
    FP_SHIFT_ROWS,  // int32 [T, H]: source row of every output row of a translation (-1: fill)
    FP_SHIFT_COLS,  // int32 [T, W]: source column of every output column (-1: fill)
    FP_HOST_LUTS,   // uint8 [U, 256]: tables of registered table ops, built on the host (row: the entry's ivalue)
    FP_SRC_ROW,     // int32 [N]: the row of `src` sample n reads
    FP_ORIG_ROW,    // int32 [N]: the row of `orig` holding sample n's stage input
    FP_FIELDS
};

template <typename T>
__device__ __forceinline__ const T* fp_field(const fp_u8* packed, const fp_i64* header, int field) {
    return (const T*)(packed + header[field]);
}

// PIL ImagingBlend: float32 first + alpha * (second - first), truncated toward zero, clipped.
// Clipped as a float, so a sum past the int range (a huge alpha) gives 0 or 255 on the host as
// on the device (where the conversion saturates), and NaN gives 0.
__device__ __forceinline__ fp_u8 fp_blend(int first, int second, float alpha) {
    const float t = __fadd_rn((float)first, __fmul_rn(alpha, (float)(second - first)));
    return (fp_u8)(!(t > 0.0f) ? 0 : (t >= 255.0f ? 255 : (int)t));
}

// PIL's RGB -> L conversion.
__device__ __forceinline__ int fp_luminance(int r, int g, int b) {
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

// float32 -> bfloat16 bits, round to nearest even (torch's conversion); NaN stays a quiet NaN.
__device__ __forceinline__ fp_u16 fp_bfloat16_bits(float f) {
    const fp_u32 x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (fp_u16)((x >> 16) | 0x0040u);
    return (fp_u16)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// float32 -> IEEE float16 bits, round to nearest even (what torch's .half() does).
__device__ __forceinline__ fp_u16 fp_half_bits(float f) {
    const fp_u32 x = __float_as_uint(f);
    const fp_u32 sign = (x >> 16) & 0x8000u;
    fp_u32 mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u) return (fp_u16)(sign | (mag > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (mag >= 0x477ff000u) return (fp_u16)(sign | 0x7c00u);  // >= 65520 rounds to infinity
    if (mag >= 0x38800000u) {                                  // normal half
        mag += 0x0fffu + ((mag >> 13) & 1u);
        return (fp_u16)(sign | ((mag - 0x38000000u) >> 13));
    }
    const int shift = 126 - (int)(mag >> 23);                  // subnormal half: units of 2^-24
    if (shift > 24) return (fp_u16)sign;
    const fp_u32 m = (mag & 0x7fffffu) | 0x800000u;
    fp_u32 h = m >> shift;
    const fp_u32 rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return (fp_u16)(sign | h);
}
