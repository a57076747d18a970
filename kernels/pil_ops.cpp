// The `pil` stage's native forms (host-only): Sharpness, Color, Equalize, AutoContrast and
// Contrast, each one call from a PIL image's own memory to a new image's
// (fastpolicy/backends/pil_native.py builds this with g++ and calls it through ctypes). An "L"
// image is one byte per pixel, an "RGB" image four (R, G, B and a padding byte), rows back to
// back. The pixel rules are the kernels' own (common.cuh: fp_blend, PIL's float32 blend;
// fp_luminance, PIL's grey) and the tables are built as the reference builds them
// (fastpolicy/reference/color.py), so each op's arithmetic is the reference's as in every other
// backend; the loops are written for the CPU (whole rows, vectorized); counting levels and the
// table lookup are pil_levels.hpp's.
#include <cstdint>
#include <cstring>

#define __device__
#define __forceinline__ inline
#include "host_intrinsics.hpp"
#include "common.cuh"
#include "pil_levels.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pixels are read as little-endian bytes");

// Each exported function in one variant per instruction set (x86-64 v4, v3, the baseline), the
// CPU's own chosen when the library loads: g++ 12 or later on x86-64 glibc; elsewhere, or with
// -DFP_PIL_BASELINE, the baseline alone.
// (target_clones needs the GNU C library's ifunc: glibc only.)
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && \
    !defined(FP_PIL_BASELINE)
#define FP_PIL_VARIANTS __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FP_PIL_VARIANTS
#endif
// The loops an exported function calls are inlined into each of its variants (a function
// compiled once, outside them, would run the baseline instructions in all).
#define FP_PIL_INLINE static inline __attribute__((always_inline))

// Sharpness's smoothed level of a 3x3 neighbourhood whose weighted sum (PIL's SMOOTH kernel:
// 1 around, 5 in the centre) is `sum`. The reference (and the kernels' apply_sharpness) adds
// 0.5 and the nine weighted levels (weights 1/13, 5/13) in float32 and truncates; the exact
// value 0.5 + sum / 13 = (2 sum + 13) / 26 is never an integer (2 sum + 13 is odd) and lies at
// least 1/26 from one, while the float32 sum is within 1e-4 of it (eighteen roundings of values
// below 256): so the truncation is the integer quotient, exactly (tests/test_pil_native.py
// checks it against the float32 form over every sum).
// In 16 bits (2 sum + 13 <= 6643), so that a vector holds twice the lanes.
FP_PIL_INLINE int fp_smooth_level(uint16_t sum) { return (uint16_t)(2 * sum + 13) / (uint16_t)26; }

// One row of Sharpness: `count` values from `mid` (the row) with `up` and `down` its neighbours,
// `C` bytes apart horizontally (a pixel's bytes); PIL's padding byte of an RGB image is filtered
// like a band (every byte lane is its own, so the bands' bytes are the same whatever it holds).
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

// The sum of the grey levels (PIL's L conversion, fp_luminance) of the `pixels` RGB pixels at
// `px` (four bytes each): ImageEnhance.Contrast's statistic without the grey image.
FP_PIL_INLINE int64_t fp_grey_sum(const uint8_t* __restrict__ px, int64_t pixels) {
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
FP_PIL_INLINE void fp_extremes(const uint8_t* __restrict__ px, int64_t pixels, int pixel_bytes, uint8_t* low,
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

// Equalize's table of each band (`bands`: 3, or an L image's 1) into `table` [bands][256], from
// the bands' histograms `hist` [bands][256].
FP_PIL_INLINE void fp_equalize_tables(const int64_t* hist, int bands, uint8_t* table) {
    for (int c = 0; c < bands; ++c) {  // color.equalize_lut
        const int64_t* h = hist + c * 256;
        int last = 255;
        while (last > 0 && h[last] == 0) --last;
        int64_t total = 0;
        for (int i = 0; i < 256; ++i) total += h[i];
        const int64_t step = (total - h[last]) / 255;
        int64_t below = 0;
        for (int i = 0; i < 256; ++i) {
            const int64_t level = step > 0 ? (step / 2 + below) / step : i;
            table[c * 256 + i] = (uint8_t)(level < 0 ? 0 : level > 255 ? 255 : level);
            below += h[i];
        }
    }
}

// AutoContrast's table of each band into `table` [bands][256], from its lowest and highest level.
FP_PIL_INLINE void fp_autocontrast_tables(const uint8_t* low, const uint8_t* high, int bands, uint8_t* table) {
    for (int c = 0; c < bands; ++c) {  // color.autocontrast_lut: float64, truncated
        const int lo = low[c], hi = high[c];
        const double scale = 255.0 / (double)(hi - lo), offset = (double)(-lo) * scale;
        for (int i = 0; i < 256; ++i) {
            const double level = hi <= lo ? (double)i : __builtin_trunc(__dadd_rn(__dmul_rn((double)i, scale), offset));
            table[c * 256 + i] = (uint8_t)(level < 0 ? 0 : level > 255 ? 255 : level);
        }
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

// dst = ImageOps.equalize(src), `pixel_bytes` 1 (L) or 4 (RGB): each band's histogram, its
// table (color.equalize_lut), the lookup (`vector` 0: byte by byte). src and dst do not overlap.
FP_PIL_VARIANTS
void fp_pil_equalize(const uint8_t* src, uint8_t* dst, int64_t pixels, int pixel_bytes, int vector) {
    const int bands = pixel_bytes == 4 ? 3 : 1;
    int64_t hist[3 * 256];
    uint8_t table[3 * 256];
    fp_count_levels(src, pixels, pixel_bytes, bands, hist);
    fp_equalize_tables(hist, bands, table);
    fp_lookup(src, dst, pixels, pixel_bytes, bands, table, vector);
}

// dst = ImageOps.autocontrast(src) (cutoff 0): each band's lowest and highest level, its table
// (color.autocontrast_lut), the lookup.
FP_PIL_VARIANTS
void fp_pil_autocontrast(const uint8_t* src, uint8_t* dst, int64_t pixels, int pixel_bytes, int vector) {
    const int bands = pixel_bytes == 4 ? 3 : 1;
    uint8_t low[3], high[3], table[3 * 256];
    fp_extremes(src, pixels, pixel_bytes, low, high);
    fp_autocontrast_tables(low, high, bands, table);
    fp_lookup(src, dst, pixels, pixel_bytes, bands, table, vector);
}

// dst = ImageEnhance.Contrast(src).enhance(alpha): the grey mean (color.histogram_mean: float64, half
// up), the table blending it with each level (color.contrast_lut), the lookup.
FP_PIL_VARIANTS
void fp_pil_contrast(const uint8_t* src, uint8_t* dst, int64_t pixels, int pixel_bytes, float alpha, int vector) {
    const int bands = pixel_bytes == 4 ? 3 : 1;
    int64_t total = 0;
    if (pixel_bytes == 4) {
        total = fp_grey_sum(src, pixels);
    } else {
        for (int64_t p = 0; p < pixels; ++p) total += src[p];
    }
    const int mean = (int)__dadd_rn((double)total / (double)pixels, 0.5);
    uint8_t table[3 * 256];
    for (int i = 0; i < 256; ++i) table[i] = table[256 + i] = table[512 + i] = fp_blend(mean, i, alpha);
    fp_lookup(src, dst, pixels, pixel_bytes, bands, table, vector);
}

}  // extern "C"
