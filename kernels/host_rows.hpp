// The native CPU stage's rows (kernels/host.hpp): fp_apply's host branch (apply.cu, under
// FP_HOST_LOOPS) runs one block per sample, one thread each, and calls the sample's
// fp_rows_<apply function> below: it writes all rows of that sample. Each is the device
// apply function's arithmetic, row by row, so the results are the same bits, written so that
// the compiler keeps every scalar and pointer in a register (uint8 stores may alias anything,
// so nothing is re-read from the slot inside a loop) and vectorizes the loops over a row.
//
// A row function `row(y, x0, count, out)` writes pixels [x0, x0 + count) of row y, C values
// each, into `out`. For a uint8 NHWC output (every intermediate slot) `out` is the output
// row itself; for the other outputs it is a run of up to FP_HOST_RUN pixels that
// fp_store_run converts and stores.
#pragma once
#include <cstring>

#define FP_HOST_RUN 256
#define FP_HOST_TILE_ROWS 16  // a general warp's output tiles (uint8 NHWC outputs)
#define FP_HOST_TILE_COLS 32
#define FP_SIMD _Pragma("omp simd")

// Store a run (see fp_store) with C known: loops over contiguous elements the compiler vectorizes.
template <int C>
static inline void fp_store_run(void* dst, int out_mode, const float* mean, const float* inv_std, int n, fp_i64 p,
                                int count, fp_i64 pixels, const fp_u8* __restrict__ px) {
    const int type = out_mode & 3;
    if (out_mode & FP_OUT_PLANAR) {
        for (int c = 0; c < C; ++c) {
            const fp_i64 at = ((fp_i64)n * C + c) * pixels + p;
            if (type == FP_OUT_UINT8) {
                fp_u8* __restrict__ o = (fp_u8*)dst + at;
                FP_SIMD for (int i = 0; i < count; ++i) o[i] = px[i * C + c];
                continue;
            }
            const float m = mean[c], scale = inv_std[c];
            if (type == FP_OUT_FLOAT32) {
                float* __restrict__ o = (float*)dst + at;
                FP_SIMD for (int i = 0; i < count; ++i) o[i] = __fmul_rn(__fsub_rn((float)px[i * C + c], m), scale);
            } else if (type == FP_OUT_FLOAT16) {
                fp_u16* __restrict__ o = (fp_u16*)dst + at;
                FP_SIMD for (int i = 0; i < count; ++i)
                    o[i] = fp_half_bits(__fmul_rn(__fsub_rn((float)px[i * C + c], m), scale));
            } else {
                fp_u16* __restrict__ o = (fp_u16*)dst + at;
                FP_SIMD for (int i = 0; i < count; ++i)
                    o[i] = fp_bfloat16_bits(__fmul_rn(__fsub_rn((float)px[i * C + c], m), scale));
            }
        }
        return;
    }
    const fp_i64 at = ((fp_i64)n * pixels + p) * C;
    if (type == FP_OUT_UINT8) {
        std::memcpy((fp_u8*)dst + at, px, (size_t)count * C);
        return;
    }
    float m[C], scale[C];
    for (int c = 0; c < C; ++c) m[c] = mean[c], scale[c] = inv_std[c];
    for (int i = 0; i < count; ++i) {
        for (int c = 0; c < C; ++c) {
            const float v = __fmul_rn(__fsub_rn((float)px[i * C + c], m[c]), scale[c]);
            if (type == FP_OUT_FLOAT32) ((float*)dst)[at + i * C + c] = v;
            else if (type == FP_OUT_FLOAT16) ((fp_u16*)dst)[at + i * C + c] = fp_half_bits(v);
            else ((fp_u16*)dst)[at + i * C + c] = fp_bfloat16_bits(v);
        }
    }
}

// Every row of sample n through `row` (see the top of this file), stored in `out_mode`.
template <int C, typename Row>
static inline void fp_host_rows(const FpSlot& s, int n, void* dst, int out_mode, const float* mean,
                                const float* inv_std, Row row) {
    const int height = s.height, width = s.width;
    const fp_i64 pixels = (fp_i64)height * width;
    if (out_mode == FP_OUT_UINT8) {
        fp_u8* out = (fp_u8*)dst + (fp_i64)n * pixels * C;
        for (int y = 0; y < height; ++y) row(y, 0, width, out + (fp_i64)y * width * C);
        return;
    }
    alignas(64) fp_u8 run[C * FP_HOST_RUN];
    for (int y = 0; y < height; ++y) {
        for (int x0 = 0; x0 < width; x0 += FP_HOST_RUN) {
            const int count = width - x0 < FP_HOST_RUN ? width - x0 : FP_HOST_RUN;
            row(y, x0, count, run);
            fp_store_run<C>(dst, out_mode, mean, inv_std, n, (fp_i64)y * width + x0, count, pixels, run);
        }
    }
}

// Sample n's slot input, row 0 (uint8 [H, W, C]).
static inline const fp_u8* fp_host_image(const FpSlot& s, int n) { return fp_pixel(s, s.src, s.src_row[n], 0, 0); }

// The arguments every fp_rows_* takes; FP_HOST_ROWS(function) defines fp_rows_<function>
// for C = 1 and 3 from the template fp_rows_<function>_c<C>.
#define FP_HOST_ROWS_ARGS const FpSlot &s, int n, void *dst, int out_mode, const float *mean, const float *inv_std
#define FP_HOST_ROWS(function)                                                                             \
    __attribute__((noinline)) static void fp_rows_##function(FP_HOST_ROWS_ARGS) {                        \
        if (s.channels == 3) fp_rows_##function##_c<3>(s, n, dst, out_mode, mean, inv_std);               \
        else fp_rows_##function##_c<1>(s, n, dst, out_mode, mean, inv_std);                                \
    }

template <int C>
static void fp_rows_apply_copy_c(FP_HOST_ROWS_ARGS) {
    const fp_u8* image = fp_host_image(s, n);
    const fp_i64 stride = (fp_i64)s.width * C;
    fp_host_rows<C>(s, n, dst, out_mode, mean, inv_std, [=](int y, int x0, int count, fp_u8* __restrict__ out) {
        std::memcpy(out, image + y * stride + (fp_i64)x0 * C, (size_t)count * C);
    });
}
FP_HOST_ROWS(apply_copy)

template <int C>
static void fp_rows_apply_cutout_c(FP_HOST_ROWS_ARGS) {
    const fp_u8* image = fp_host_image(s, n);
    const fp_i64 stride = (fp_i64)s.width * C;
    const int* b = s.box + (fp_i64)n * 4;
    const int y0 = b[0], bx0 = b[1], y1 = b[2], bx1 = b[3];
    fp_host_rows<C>(s, n, dst, out_mode, mean, inv_std, [=](int y, int x0, int count, fp_u8* __restrict__ out) {
        std::memcpy(out, image + y * stride + (fp_i64)x0 * C, (size_t)count * C);
        if (y < y0 || y >= y1) return;
        const int lo = bx0 > x0 ? bx0 : x0, hi = bx1 < x0 + count ? bx1 : x0 + count;
        if (lo < hi) std::memset(out + (lo - x0) * C, FP_FILL, (size_t)(hi - lo) * C);
    });
}
FP_HOST_ROWS(apply_cutout)

template <int C>
static void fp_rows_apply_lut_c(FP_HOST_ROWS_ARGS) {
    const fp_u8* image = fp_host_image(s, n);
    const fp_i64 stride = (fp_i64)s.width * C;
    const fp_u8* table = s.luts + (fp_i64)n * s.lut_stride;
    fp_host_rows<C>(s, n, dst, out_mode, mean, inv_std, [=](int y, int x0, int count, fp_u8* __restrict__ out) {
        const fp_u8* __restrict__ in = image + y * stride + (fp_i64)x0 * C;
        const fp_u8* __restrict__ t0 = table;
        if constexpr (C == 3) {
            const fp_u8* __restrict__ t1 = table + 256;
            const fp_u8* __restrict__ t2 = table + 512;
            for (int i = 0; i < count; ++i) {
                const fp_u8 r = t0[in[3 * i]], g = t1[in[3 * i + 1]], b = t2[in[3 * i + 2]];
                out[3 * i] = r;
                out[3 * i + 1] = g;
                out[3 * i + 2] = b;
            }
        } else {
            for (int i = 0; i < count; ++i) out[i] = t0[in[i]];
        }
    });
}
FP_HOST_ROWS(apply_lut)

// Fill `count` pixels of C values with `level`.
static inline void fp_host_fill(fp_u8* out, int count, int channels, fp_u8 level) {
    if (count > 0) std::memset(out, level, (size_t)count * channels);
}

// `count` pixels of a warped row whose first pixel's fixed-point source coordinates are
// (cx0, cy0) (see below); by value, so nothing is re-read after a uint8 store.
template <int C>
__attribute__((noinline)) static void fp_host_warp_row(const fp_u8* __restrict__ image, fp_i64 a0, fp_i64 cx0, fp_i64 a3, fp_i64 cy0,
                                    fp_i64 height, fp_i64 width, fp_i64 last, fp_u8 fill, int count,
                                    fp_u8* __restrict__ out) {
    if (a0 == 65536 && a3 == 0) {
        // one source row, consecutive columns c0 + i: a copy between fills
        const fp_i64 row = cy0 >> 16, c0 = cx0 >> 16;
        if (row < 0 || row >= height) return fp_host_fill(out, count, C, fill);
        const fp_i64 lo = c0 < 0 ? (-c0 < count ? -c0 : count) : 0;
        const fp_i64 hi = width - c0 < count ? (width - c0 > lo ? width - c0 : lo) : count;
        fp_host_fill(out, (int)lo, C, fill);
        if (hi > lo) std::memcpy(out + lo * C, image + (row * width + c0 + lo) * C, (size_t)(hi - lo) * C);
        fp_host_fill(out + hi * C, (int)(count - hi), C, fill);
        return;
    }
    // the in-range pixels are one span (both coordinates are monotone in x): fills, copies, fills
    const unsigned long long w = (unsigned long long)width, h = (unsigned long long)height;
    fp_i64 cx = cx0, cy = cy0;
    int i = 0;
    for (; i < count && ((unsigned long long)(cx >> 16) >= w || (unsigned long long)(cy >> 16) >= h);
         ++i, cx += a0, cy += a3)
        for (int c = 0; c < C; ++c) out[i * C + c] = fill;
    for (; i < count && (unsigned long long)(cx >> 16) < w && (unsigned long long)(cy >> 16) < h;
         ++i, cx += a0, cy += a3) {
        const fp_i64 at = (cy >> 16) * width + (cx >> 16);
        fp_u8* px = out + i * C;
        if (C == 3 && at < last) {  // one 4-byte load where it stays inside the image
            fp_u32 v;
            std::memcpy(&v, image + at * C, 4);
            px[0] = (fp_u8)v;
            px[1] = (fp_u8)(v >> 8);
            px[2] = (fp_u8)(v >> 16);
        } else {
            for (int c = 0; c < C; ++c) px[c] = image[at * C + c];
        }
    }
    fp_host_fill(out + i * C, count - i, C, fill);
}

// Shear and rotation: PIL's affine_fixed, ((a2 + y a1 + x a0) >> 16, (a5 + y a4 + x a3) >> 16);
// the coordinates of pixel x0 + i, grown by a0 and a3 per pixel, are the same integers.
template <int C>
static void fp_rows_apply_warp_c(FP_HOST_ROWS_ARGS) {
    const fp_u8* image = fp_host_image(s, n);
    const fp_i64* a = s.fixed + (fp_i64)s.entry[n] * 6;
    const fp_i64 a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5];
    const fp_i64 height = s.height, width = s.width, last = height * width - 1;
    const fp_u8 fill = (fp_u8)s.fill;
    if (!(a0 == 65536 && a3 == 0)) {
        // a warp reads across rows, a pattern the hardware prefetchers do not follow: ask for the
        // whole source image first (streamed in order), so the reads below hit the cache
        const fp_u8* end = image + height * width * C;
        for (const fp_u8* p = image; p < end; p += 64) __builtin_prefetch(p, 0, 2);
        if (out_mode == FP_OUT_UINT8 && a1 != 0 && a3 != 0) {
            // a rotation, in tiles of FP_HOST_TILE_ROWS x FP_HOST_TILE_COLS output pixels: the source
            // pixels a tile reads stay in the L1 cache (a rotated row touches a new line per pixel)
            fp_u8* target = (fp_u8*)dst + (fp_i64)n * height * width * C;
            for (fp_i64 ty = 0; ty < height; ty += FP_HOST_TILE_ROWS)
                for (fp_i64 tx = 0; tx < width; tx += FP_HOST_TILE_COLS) {
                    const int count = (int)(width - tx < FP_HOST_TILE_COLS ? width - tx : FP_HOST_TILE_COLS);
                    for (fp_i64 y = ty; y < height && y < ty + FP_HOST_TILE_ROWS; ++y)
                        fp_host_warp_row<C>(image, a0, a2 + y * a1 + tx * a0, a3, a5 + y * a4 + tx * a3, height,
                                            width, last, fill, count, target + (y * width + tx) * C);
                }
            return;
        }
    }
    fp_host_rows<C>(s, n, dst, out_mode, mean, inv_std, [=](int y, int x0, int count, fp_u8* __restrict__ out) {
        fp_host_warp_row<C>(image, a0, a2 + y * a1 + x0 * a0, a3, a5 + y * a4 + x0 * a3, height, width, last, fill,
                            count, out);
    });
}
FP_HOST_ROWS(apply_warp)
// The rows compute in int64 whatever the size: the int32 guard is the device's.
static void fp_rows_apply_warp_wide(FP_HOST_ROWS_ARGS) { fp_rows_apply_warp(s, n, dst, out_mode, mean, inv_std); }

// Translation (PIL's float64 scale/translate engine): per-row and per-column source tables.
// Where the column table is one run cols[x] = x + k between -1s (every translation PIL makes
// so far) a row is a copy between fills; otherwise the table is read pixel by pixel.
template <int C>
static void fp_rows_apply_shift_c(FP_HOST_ROWS_ARGS) {
    const fp_u8* image = fp_host_image(s, n);
    const fp_i64 t = s.shift[s.entry[n]];
    const int width = s.width;
    const int* rows = s.rows + t * s.height;
    const int* cols = s.cols + t * width;
    const fp_u8 fill = (fp_u8)s.fill;
    int lo = 0, hi = width;
    while (lo < width && cols[lo] < 0) ++lo;
    while (hi > lo && cols[hi - 1] < 0) --hi;
    bool run = true;
    for (int x = lo; x < hi && run; ++x) run = cols[x] == cols[lo] + (x - lo);
    const int k = lo < hi ? cols[lo] - lo : 0;
    fp_host_rows<C>(s, n, dst, out_mode, mean, inv_std, [=](int y, int x0, int count, fp_u8* __restrict__ out) {
        const int row = rows[y];
        if (row < 0) return fp_host_fill(out, count, C, fill);
        const fp_u8* __restrict__ line = image + (fp_i64)row * width * C;
        if (run) {
            const int a = lo > x0 ? (lo < x0 + count ? lo : x0 + count) : x0;
            const int b = hi < x0 + count ? (hi > a ? hi : a) : x0 + count;
            fp_host_fill(out, a - x0, C, fill);
            if (b > a) std::memcpy(out + (a - x0) * C, line + (fp_i64)(a + k) * C, (size_t)(b - a) * C);
            fp_host_fill(out + (b - x0) * C, x0 + count - b, C, fill);
            return;
        }
        const int* __restrict__ c_of = cols + x0;
        for (int i = 0; i < count; ++i) {
            const int col = c_of[i];
            for (int c = 0; c < C; ++c) out[i * C + c] = col < 0 ? fill : line[col * C + c];
        }
    });
}
FP_HOST_ROWS(apply_shift)

// Color: blend with the pixel's own grey (L) level.
template <int C>
static void fp_rows_apply_color_c(FP_HOST_ROWS_ARGS) {
    const fp_u8* image = fp_host_image(s, n);
    const fp_i64 stride = (fp_i64)s.width * C;
    const float alpha = fp_value(s, n);
    fp_host_rows<C>(s, n, dst, out_mode, mean, inv_std, [=](int y, int x0, int count, fp_u8* __restrict__ out) {
        const fp_u8* __restrict__ in = image + y * stride + (fp_i64)x0 * C;
        const float value = alpha;
        if constexpr (C == 3) {
            // each pixel's grey level three times, then one blend per value (a loop that vectorizes)
            alignas(64) fp_u8 grey[3 * FP_HOST_RUN];
            for (int start = 0; start < count; start += FP_HOST_RUN) {
                const int pixels = count - start < FP_HOST_RUN ? count - start : FP_HOST_RUN;
                const fp_u8* __restrict__ p = in + 3 * start;
                for (int i = 0; i < pixels; ++i) {
                    const fp_u8 g = (fp_u8)fp_luminance(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
                    grey[3 * i] = grey[3 * i + 1] = grey[3 * i + 2] = g;
                }
                fp_u8* __restrict__ o = out + 3 * start;
                FP_SIMD for (int j = 0; j < 3 * pixels; ++j) o[j] = fp_blend(grey[j], p[j], value);
            }
        } else {
            FP_SIMD for (int i = 0; i < count; ++i) out[i] = fp_blend(in[i], in[i], value);
        }
    });
}
FP_HOST_ROWS(apply_color)

// Sharpness: blend with PIL's SMOOTH 3x3 filter (float32, rows y+1, y, y-1; border kept). The
// filter of value j of a row reads values j - C, j, j + C of the rows above, at and below.
template <int C>
static void fp_rows_apply_sharpness_c(FP_HOST_ROWS_ARGS) {
    const fp_u8* image = fp_host_image(s, n);
    const int height = s.height, width = s.width;
    const fp_i64 stride = (fp_i64)width * C;
    const float alpha = fp_value(s, n);
    fp_host_rows<C>(s, n, dst, out_mode, mean, inv_std, [=](int y, int x0, int count, fp_u8* __restrict__ out) {
        const fp_u8* __restrict__ mid = image + y * stride;
        std::memcpy(out, mid + (fp_i64)x0 * C, (size_t)count * C);
        if (y == 0 || y >= height - 1) return;
        const int a = x0 > 1 ? x0 : 1, b = x0 + count < width - 1 ? x0 + count : width - 1;
        if (a >= b) return;
        const fp_u8* __restrict__ up = mid - stride;
        const fp_u8* __restrict__ down = mid + stride;
        fp_u8* __restrict__ o = out - (fp_i64)x0 * C;
        const float side = (float)(1.0 / 13.0), centre = (float)(5.0 / 13.0), value = alpha;
        FP_SIMD for (int j = a * C; j < b * C; ++j) {
            float total = 0.5f;
            total = __fadd_rn(total, __fadd_rn(__fadd_rn(__fmul_rn((float)down[j - C], side),
                                                          __fmul_rn((float)down[j], side)),
                                               __fmul_rn((float)down[j + C], side)));
            total = __fadd_rn(total, __fadd_rn(__fadd_rn(__fmul_rn((float)mid[j - C], side),
                                                          __fmul_rn((float)mid[j], centre)),
                                               __fmul_rn((float)mid[j + C], side)));
            total = __fadd_rn(total, __fadd_rn(__fadd_rn(__fmul_rn((float)up[j - C], side),
                                                          __fmul_rn((float)up[j], side)),
                                               __fmul_rn((float)up[j + C], side)));
            // the weights sum to 1, so 0.5 <= total < 256 and the device's clamp to [0, 255]
            // (total <= 0: 0, total >= 255: 255, else (int)total) is (int)total
            o[j] = fp_blend((int)total, mid[j], value);
        }
    });
}
FP_HOST_ROWS(apply_sharpness)

// SamplePairing: blend with the partner's pixel as it entered the stage.
template <int C>
static void fp_rows_apply_sample_pairing_c(FP_HOST_ROWS_ARGS) {
    const fp_u8* image = fp_host_image(s, n);
    const fp_u8* partner = fp_pixel(s, s.orig, s.orig_row[s.partner[n]], 0, 0);
    const fp_i64 stride = (fp_i64)s.width * C;
    const float alpha = fp_value(s, n);
    fp_host_rows<C>(s, n, dst, out_mode, mean, inv_std, [=](int y, int x0, int count, fp_u8* __restrict__ out) {
        const fp_u8* __restrict__ in = image + y * stride + (fp_i64)x0 * C;
        const fp_u8* __restrict__ other = partner + y * stride + (fp_i64)x0 * C;
        const float value = alpha;
        FP_SIMD for (int i = 0; i < count * C; ++i) out[i] = fp_blend(in[i], other[i], value);
    });
}
FP_HOST_ROWS(apply_sample_pairing)

#undef FP_HOST_ROWS
