// Levels counted and mapped through tables over PIL images' own memory (host-only), shared by
// kernels/pil_pixels.cpp (the reference's tables, built in Python) and kernels/pil_ops.cpp (the
// table ops built there): an "L" image one byte per pixel, an "RGB" image four (R, G, B and a
// padding byte).
#pragma once
#include <cstdint>
#include <cstring>

// hist int64 [bands][256] (overwritten): the levels of the first `bands` bytes of each of the
// `pixels` pixels of `pixel_bytes` bytes at `px`.
static inline void fp_count_levels(const uint8_t* px, int64_t pixels, int pixel_bytes, int bands, int64_t* hist) {
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

// The table lookup of fp_lookup with AVX-512 VBMI: 64 bytes at a time, each band's 256-entry
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

// 1 where fp_lookup's vector loop runs on this CPU (AVX-512 VBMI), else 0.
static inline int fp_lookup_vectorized(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

// dst = src with byte c < bands of every pixel mapped through table[c * 256 + level]; the bytes
// past `bands` (RGB's padding) copied as they are. src and dst do not overlap. `vector` 0 keeps
// to the scalar loop (the tests compare both).
static inline void fp_lookup(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, int64_t pixels,
                             int pixel_bytes, int bands, const uint8_t* table, int vector) {
    uint8_t t[4 * 256];  // a local copy: the stores below cannot alias it
    std::memcpy(t, table, 256 * (size_t)bands);
    int64_t p = 0;
#if defined(__x86_64__)
    if (vector && (pixel_bytes == 1 || pixel_bytes == 4) && fp_lookup_vectorized())
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
