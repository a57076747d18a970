// Sharpness and Color on PIL images' own memory (host-only): the `pil` stage's native forms of
// these two ops (fastpolicy/backends/pil_native.py builds this with g++ and calls it through
// ctypes). An "L" image is one byte per pixel, an "RGB" image four (R, G, B and a padding byte),
// rows back to back. The pixel rules are the kernels' own (common.cuh: fp_blend, PIL's float32
// blend; fp_luminance, PIL's grey), so each op's arithmetic is the reference's
// (fastpolicy/reference/color.py) as in every other backend; the loops are written for the CPU
// (whole rows, vectorized, one variant per instruction set, chosen at load time).
#include <cstdint>
#include <cstring>

#define __device__
#define __forceinline__ inline
#include "host_intrinsics.hpp"
#include "common.cuh"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pixels are read as little-endian bytes");

#define FP_PIL_VARIANTS __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#if !defined(__x86_64__)
#undef FP_PIL_VARIANTS
#define FP_PIL_VARIANTS
#endif
// The loops an exported function calls are inlined into each of its variants (a function
// compiled once, outside them, would run the baseline instructions in all).
#define FP_PIL_INLINE static inline __attribute__((always_inline))

// Sharpness's smoothed level of a 3x3 neighbourhood whose weighted sum (PIL's SMOOTH kernel:
// 1 around, 5 in the centre) is `sum`. The reference (and the kernels' apply_sharpness) adds
// 0.5 and the nine weighted levels (weights 1/13, 5/13) in float32 and truncates; the exact
// value 0.5 + sum / 13 = (2 sum + 13) / 26 is never an integer (2 sum + 13 is odd) and lies at
// least 1/26 from one, while the float32 sum is within 1e-4 of it (twelve roundings of values
// below 256): so the truncation is the integer quotient, exactly (tests/test_pil_native.py
// checks it against the float32 form over every sum).
// In 16 bits (2 sum + 13 <= 6643), so that a vector holds twice the lanes.
FP_PIL_INLINE int fp_smooth_level(uint16_t sum) { return (uint16_t)(2 * sum + 13) / (uint16_t)26; }

// One row of Sharpness: `count` values from `mid` (the row) with `up` and `down` its neighbours,
// `C` bytes apart horizontally (a pixel's bytes); PIL's padding byte of an RGB image is filtered
// like a band (it is 255 in every image Pillow makes, so it stays 255).
template <int C>
FP_PIL_INLINE void fp_sharpness_row(const fp_u8* __restrict__ up, const fp_u8* __restrict__ mid,
                                    const fp_u8* __restrict__ down, fp_u8* __restrict__ out, int count, float alpha) {
#pragma omp simd
    for (int j = 0; j < count; ++j) {
        const uint16_t sum = (uint16_t)(up[j - C] + up[j] + up[j + C] + mid[j - C] + 5 * mid[j] + mid[j + C] +
                                        down[j - C] + down[j] + down[j + C]);
        out[j] = fp_blend(fp_smooth_level(sum), mid[j], alpha);
    }
}

template <int C>
FP_PIL_INLINE void fp_sharpness(const fp_u8* src, fp_u8* dst, int width, int height, float alpha) {
    const int64_t stride = (int64_t)width * C;
    for (int y = 0; y < height; ++y) {
        const fp_u8* mid = src + y * stride;
        fp_u8* out = dst + y * stride;
        if (y == 0 || y == height - 1 || width < 3) {  // the border is kept (PIL's filter copies it)
            std::memcpy(out, mid, stride);
            continue;
        }
        std::memcpy(out, mid, C);
        std::memcpy(out + stride - C, mid + stride - C, C);
        fp_sharpness_row<C>(mid - stride + C, mid + C, mid + stride + C, out + C, (int)(stride - 2 * C), alpha);
    }
}

extern "C" {

// dst = ImageEnhance.Sharpness(src).enhance(alpha): the image blended with PIL's SMOOTH filter
// of it (border pixels kept), `pixel_bytes` 1 (L) or 4 (RGB); src and dst do not overlap.
FP_PIL_VARIANTS
void fp_pil_sharpness(const uint8_t* src, uint8_t* dst, int width, int height, int pixel_bytes, float alpha) {
    if (pixel_bytes == 4) fp_sharpness<4>(src, dst, width, height, alpha);
    else fp_sharpness<1>(src, dst, width, height, alpha);
}

// dst = ImageEnhance.Color(src).enhance(alpha): every band blended with the pixel's grey
// (fp_luminance; an L image with itself), `pixel_bytes` 1 (L) or 4 (RGB, the padding byte
// copied); src and dst do not overlap.
FP_PIL_VARIANTS
void fp_pil_color(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, int64_t pixels, int pixel_bytes,
                  float alpha) {
    if (pixel_bytes != 4) {
#pragma omp simd
        for (int64_t p = 0; p < pixels; ++p) dst[p] = fp_blend(src[p], src[p], alpha);
        return;
    }
    // a pixel as a 32-bit word (R in the low byte): every step in 32-bit lanes
#pragma omp simd
    for (int64_t p = 0; p < pixels; ++p) {
        uint32_t word;
        std::memcpy(&word, src + 4 * p, 4);
        const int r = word & 255, g = (word >> 8) & 255, b = (word >> 16) & 255;
        const int grey = fp_luminance(r, g, b);
        const uint32_t out = fp_blend(grey, r, alpha) | (uint32_t)fp_blend(grey, g, alpha) << 8 |
                             (uint32_t)fp_blend(grey, b, alpha) << 16 | (word & 0xff000000u);
        std::memcpy(dst + 4 * p, &out, 4);
    }
}

}  // extern "C"
