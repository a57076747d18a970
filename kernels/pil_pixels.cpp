// Pixel plumbing on PIL images' own memory (host-only). fastpolicy/backends/pil_pixels.py
// builds it with g++ and calls it through ctypes on the memory Pillow exports (its Arrow
// interface): an "L" image is one byte per pixel, an "RGB" image four (R, G, B and a padding
// byte). Nothing here defines an op: the tables come from the NumPy reference
// (fastpolicy/reference/color.py); these loops only count levels, map them through a table, and
// copy pixels between layouts (PIL's grey conversion is the kernels' own, common.cuh).
#include <cstdint>
#include <cstring>

#define __device__
#define __forceinline__ inline
#include "host_intrinsics.hpp"
#include "common.cuh"

// One variant per instruction set, chosen at load time, for the loops written to vectorize.
#if defined(__x86_64__)
#define FP_PIXELS_VARIANTS __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FP_PIXELS_VARIANTS
#endif

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pixels are packed as little-endian 32-bit words");

extern "C" {

// hist int64 [bands][256] (overwritten): the levels of the first `bands` bytes of each of the
// `pixels` pixels of `pixel_bytes` bytes at `px`.
void fp_pixels_histogram(const uint8_t* px, int64_t pixels, int pixel_bytes, int bands, int64_t* hist) {
    // four partial counts per band (pixel p into copy p % 4): neighbouring pixels often share a
    // level, and one count would serialize their increments
    uint32_t part[4][4][256];  // 16 KiB on the stack
    std::memset(part, 0, sizeof(part));
    int64_t p = 0;
    if (pixel_bytes == 4 && bands == 3) {
        for (; p + 4 <= pixels; p += 4)
            for (int q = 0; q < 4; ++q) {
                const uint8_t* v = px + (p + q) * 4;
                ++part[q][0][v[0]];
                ++part[q][1][v[1]];
                ++part[q][2][v[2]];
            }
    } else {
        for (; p + 4 <= pixels; p += 4)
            for (int q = 0; q < 4; ++q) {
                const uint8_t* v = px + (p + q) * pixel_bytes;
                for (int c = 0; c < bands; ++c) ++part[q][c][v[c]];
            }
    }
    for (; p < pixels; ++p)
        for (int c = 0; c < bands; ++c) ++part[0][c][px[p * pixel_bytes + c]];
    for (int c = 0; c < bands; ++c)
        for (int level = 0; level < 256; ++level)
            hist[c * 256 + level] = (int64_t)part[0][c][level] + part[1][c][level] + part[2][c][level] + part[3][c][level];
}

// The table lookup of fp_pixels_lut with AVX-512 VBMI: 64 bytes at a time, each band's 256-entry
// table as four 64-byte vectors; vpermi2b looks up the low 7 bits of every byte in two of them
// (entries 0-127 or 128-255) and the top bit picks which. Returns the bytes done (a multiple of
// 64); the rest is left to the scalar loop.
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static int64_t fp_lut_vbmi(
    const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, int64_t bytes, int pixel_bytes, int bands,
    const uint8_t* t) {
    __m512i table[4][4];
    __mmask64 lanes[4] = {0, 0, 0, 0};  // the bytes of band c in a 64-byte run (pixel_bytes divides 64)
    for (int c = 0; c < bands; ++c) {
        for (int q = 0; q < 4; ++q) table[c][q] = _mm512_loadu_si512(t + c * 256 + q * 64);
        for (int i = c; i < 64; i += pixel_bytes) lanes[c] |= (__mmask64)1 << i;
    }
    int64_t done = 0;
    for (; done + 64 <= bytes; done += 64) {
        const __m512i v = _mm512_loadu_si512(src + done);
        const __mmask64 high = _mm512_movepi8_mask(v);
        __m512i out = v;  // bytes past `bands` (RGB's padding) stay as they are
        for (int c = 0; c < bands; ++c) {
            const __m512i low_half = _mm512_permutex2var_epi8(table[c][0], v, table[c][1]);
            const __m512i high_half = _mm512_permutex2var_epi8(table[c][2], v, table[c][3]);
            out = _mm512_mask_mov_epi8(out, lanes[c], _mm512_mask_blend_epi8(high, low_half, high_half));
        }
        _mm512_storeu_si512(dst + done, out);
    }
    return done;
}
#endif

// 1 where fp_pixels_lut's vector loop runs on this CPU (AVX-512 VBMI), else 0.
int fp_pixels_lut_vectorized(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

// dst = src with byte c < bands of every pixel mapped through table[c * 256 + level]; the bytes
// past `bands` (RGB's padding) copied as they are. src and dst do not overlap. `vector` 0 keeps
// to the scalar loop (the tests compare both).
void fp_pixels_lut(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, int64_t pixels, int pixel_bytes,
                   int bands, const uint8_t* table, int vector) {
    uint8_t t[4 * 256];  // a local copy: the stores below cannot alias it
    std::memcpy(t, table, 256 * (size_t)bands);
    int64_t p = 0;
#if defined(__x86_64__)
    if (vector && (pixel_bytes == 1 || pixel_bytes == 4) && fp_pixels_lut_vectorized())
        p = fp_lut_vbmi(src, dst, pixels * pixel_bytes, pixel_bytes, bands, t) / pixel_bytes;
#endif
    if (pixel_bytes == 4 && bands == 3) {
        for (; p < pixels; ++p) {
            const uint8_t r = src[4 * p], g = src[4 * p + 1], b = src[4 * p + 2], pad = src[4 * p + 3];
            dst[4 * p] = t[r];
            dst[4 * p + 1] = t[256 + g];
            dst[4 * p + 2] = t[512 + b];
            dst[4 * p + 3] = pad;
        }
        return;
    }
    for (; p < pixels; ++p)
        for (int c = 0; c < pixel_bytes; ++c)
            dst[p * pixel_bytes + c] = c < bands ? t[c * 256 + src[p * pixel_bytes + c]] : src[p * pixel_bytes + c];
}

// The sum of the grey levels (PIL's L conversion, common.cuh's fp_luminance) of the `pixels`
// RGB pixels at `px` (four bytes each): ImageEnhance.Contrast's statistic without the grey image.
FP_PIXELS_VARIANTS
int64_t fp_pixels_grey_sum(const uint8_t* __restrict__ px, int64_t pixels) {
    int64_t total = 0;
    for (int64_t start = 0; start < pixels; start += 1 << 16) {  // 32-bit partial sums: 2^16 · 255 fits
        const int64_t end = pixels - start < (1 << 16) ? pixels : start + (1 << 16);
        uint32_t part = 0;
#pragma omp simd reduction(+ : part)
        for (int64_t p = start; p < end; ++p) {
            uint32_t word;  // a pixel as a 32-bit word (R in the low byte): every step in 32-bit lanes
            std::memcpy(&word, px + 4 * p, 4);
            part += (uint32_t)fp_luminance(word & 255, (word >> 8) & 255, (word >> 16) & 255);
        }
        total += part;
    }
    return total;
}

// low, high uint8 [bands] (overwritten): each band's lowest and highest level over the `pixels`
// pixels of `pixel_bytes` bytes (1: L, or 4: RGB) at `px`.
FP_PIXELS_VARIANTS
void fp_pixels_extremes(const uint8_t* __restrict__ px, int64_t pixels, int pixel_bytes, uint8_t* low,
                        uint8_t* high) {
    if (pixel_bytes == 1) {
        uint8_t lo = 255, hi = 0;
#pragma omp simd reduction(min : lo) reduction(max : hi)
        for (int64_t p = 0; p < pixels; ++p) {
            lo = px[p] < lo ? px[p] : lo;
            hi = px[p] > hi ? px[p] : hi;
        }
        low[0] = lo, high[0] = hi;
        return;
    }
    // per byte lane of a 32-bit word: byte c of `lo` is band c's lowest (the padding byte unused)
    uint32_t lo0 = 255, lo1 = 255, lo2 = 255, hi0 = 0, hi1 = 0, hi2 = 0;
#pragma omp simd reduction(min : lo0, lo1, lo2) reduction(max : hi0, hi1, hi2)
    for (int64_t p = 0; p < pixels; ++p) {
        uint32_t word;
        std::memcpy(&word, px + 4 * p, 4);
        const uint32_t r = word & 255, g = (word >> 8) & 255, b = (word >> 16) & 255;
        lo0 = r < lo0 ? r : lo0, lo1 = g < lo1 ? g : lo1, lo2 = b < lo2 ? b : lo2;
        hi0 = r > hi0 ? r : hi0, hi1 = g > hi1 ? g : hi1, hi2 = b > hi2 ? b : hi2;
    }
    low[0] = (uint8_t)lo0, low[1] = (uint8_t)lo1, low[2] = (uint8_t)lo2;
    high[0] = (uint8_t)hi0, high[1] = (uint8_t)hi1, high[2] = (uint8_t)hi2;
}

// Copy `bands` channels of `pixels` pixels between layouts, strides in bytes (a pixel's, a
// channel's): CHW planes (pixel 1, channel H·W), HWC (pixel C, channel 1), PIL's RGB (pixel 4,
// channel 1). `pad` >= 0: also write that level into byte `bands` of every destination pixel
// (PIL's RGB padding byte, 255 as Pillow's own unpackers write it).
void fp_pixels_copy(const uint8_t* src, int64_t src_pixel, int64_t src_channel, uint8_t* dst, int64_t dst_pixel,
                    int64_t dst_channel, int64_t pixels, int bands, int pad) {
    if (bands == 3 && dst_pixel == 4 && dst_channel == 1 && pad >= 0) {  // into PIL's RGB: a word per pixel
        const uint32_t top = (uint32_t)pad << 24;
        const uint8_t *r = src, *g = src + src_channel, *b = src + 2 * src_channel;
        for (int64_t p = 0; p < pixels; ++p) {
            const int64_t at = p * src_pixel;
            const uint32_t out = r[at] | (uint32_t)g[at] << 8 | (uint32_t)b[at] << 16 | top;
            std::memcpy(dst + 4 * p, &out, 4);
        }
        return;
    }
    if (bands == 3 && src_pixel == 4 && src_channel == 1) {  // out of PIL's RGB
        uint8_t *r = dst, *g = dst + dst_channel, *b = dst + 2 * dst_channel;
        for (int64_t p = 0; p < pixels; ++p) {
            uint32_t v;
            std::memcpy(&v, src + 4 * p, 4);
            const int64_t at = p * dst_pixel;
            r[at] = (uint8_t)v;
            g[at] = (uint8_t)(v >> 8);
            b[at] = (uint8_t)(v >> 16);
        }
        return;
    }
    for (int c = 0; c < bands; ++c) {
        const uint8_t* s = src + c * src_channel;
        uint8_t* d = dst + c * dst_channel;
        for (int64_t p = 0; p < pixels; ++p) d[p * dst_pixel] = s[p * src_pixel];
    }
    if (pad >= 0)
        for (int64_t p = 0; p < pixels; ++p) dst[p * dst_pixel + bands * dst_channel] = (uint8_t)pad;
}

}  // extern "C"
