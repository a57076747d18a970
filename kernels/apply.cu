// Applying one op slot to every sample: one thread per output pixel (all its channels).
// Each sample's op picks an `apply_*` function through its code (FP_APPLIES, generated
// from the registry); all read the slot input `src` and write the C values of one pixel.
#pragma once
#include "common.cuh"

struct FpSlot {
    const fp_u8* src;      // uint8 [N, H, W, C]: the slot's input
    const fp_u8* orig;     // uint8 [N, H, W, C]: the stage's input (SamplePairing partners)
    int height, width, channels;
    int fill;              // 0..255: level of pixels a warp or shift moves in from outside
    const int* entry;      // see FpField
    const float* value;
    const fp_u8* luts;     // uint8 [N, C, 256]: tables of lut ops
    const fp_i64* fixed;
    const int* shift;
    const int* rows;
    const int* cols;
    const int* box;
    const int* partner;
    const int* src_row;
    const int* orig_row;
};

__device__ __forceinline__ FpSlot fp_slot(const fp_u8* packed, const fp_i64* header, const fp_u8* src,
                                          const fp_u8* orig, const fp_u8* luts, int height, int width,
                                          int channels, int fill) {
    FpSlot s;
    s.src = src; s.orig = orig; s.height = height; s.width = width; s.channels = channels; s.fill = fill;
    s.entry = fp_field<int>(packed, header, FP_CODE);
    s.value = fp_field<float>(packed, header, FP_E_VALUE);
    s.luts = luts;
    s.fixed = fp_field<fp_i64>(packed, header, FP_E_FIXED);
    s.shift = fp_field<int>(packed, header, FP_E_SHIFT);
    s.rows = fp_field<int>(packed, header, FP_SHIFT_ROWS);
    s.cols = fp_field<int>(packed, header, FP_SHIFT_COLS);
    s.box = fp_field<int>(packed, header, FP_BOX);
    s.partner = fp_field<int>(packed, header, FP_PARTNER);
    s.src_row = fp_field<int>(packed, header, FP_SRC_ROW);
    s.orig_row = fp_field<int>(packed, header, FP_ORIG_ROW);
    return s;
}

// Sample n's op value (float32).
__device__ __forceinline__ float fp_value(const FpSlot& s, int n) { return s.value[s.entry[n]]; }

__device__ __forceinline__ const fp_u8* fp_pixel(const FpSlot& s, const fp_u8* images, int n, int y, int x) {
    return images + (((fp_i64)n * s.height + y) * s.width + x) * s.channels;
}

// Sample n's pixel (y, x) of the slot input.
__device__ __forceinline__ const fp_u8* fp_src(const FpSlot& s, int n, int y, int x) {
    return fp_pixel(s, s.src, s.src_row[n], y, x);
}

__device__ void apply_copy(const FpSlot& s, int n, int y, int x, fp_u8* out) {
    const fp_u8* in = fp_src(s, n, y, x);
    for (int c = 0; c < s.channels; ++c) out[c] = in[c];
}

__device__ __forceinline__ void fp_take(const FpSlot& s, int n, int row, int col, fp_u8* out) {
    if (row < 0 || col < 0 || row >= s.height || col >= s.width) {
        for (int c = 0; c < s.channels; ++c) out[c] = (fp_u8)s.fill;
        return;
    }
    const fp_u8* in = fp_src(s, n, row, col);
    for (int c = 0; c < s.channels; ++c) out[c] = in[c];
}

// Shear and rotation: PIL's affine_fixed, ((a2 + y a1 + x a0) >> 16, (a5 + y a4 + x a3) >> 16).
__device__ void apply_warp(const FpSlot& s, int n, int y, int x, fp_u8* out) {
    const fp_i64* a = s.fixed + (fp_i64)s.entry[n] * 6;
    const fp_i64 col = (a[2] + y * a[1] + x * a[0]) >> 16;
    const fp_i64 row = (a[5] + y * a[4] + x * a[3]) >> 16;
    if (col < 0 || col >= s.width || row < 0 || row >= s.height) { fp_take(s, n, -1, -1, out); return; }
    fp_take(s, n, (int)row, (int)col, out);
}

// Translation (PIL's float64 scale/translate engine): per-row and per-column source tables.
__device__ void apply_shift(const FpSlot& s, int n, int y, int x, fp_u8* out) {
    const fp_i64 t = s.shift[s.entry[n]];
    fp_take(s, n, s.rows[t * s.height + y], s.cols[t * s.width + x], out);
}

__device__ void apply_lut(const FpSlot& s, int n, int y, int x, fp_u8* out) {
    const fp_u8* in = fp_src(s, n, y, x);
    const fp_u8* table = s.luts + (fp_i64)n * s.channels * 256;
    for (int c = 0; c < s.channels; ++c) out[c] = table[256 * c + in[c]];
}

// Color: blend with the pixel's own grey (L) level.
__device__ void apply_color(const FpSlot& s, int n, int y, int x, fp_u8* out) {
    const fp_u8* in = fp_src(s, n, y, x);
    const int grey = s.channels == 3 ? fp_luminance(in[0], in[1], in[2]) : in[0];
    for (int c = 0; c < s.channels; ++c) out[c] = fp_blend(grey, in[c], fp_value(s, n));
}

// Sharpness: blend with PIL's SMOOTH 3x3 filter (float32, rows y+1, y, y-1; border kept).
__device__ void apply_sharpness(const FpSlot& s, int n, int y, int x, fp_u8* out) {
    const fp_u8* in = fp_src(s, n, y, x);
    if (y == 0 || x == 0 || y >= s.height - 1 || x >= s.width - 1) {
        for (int c = 0; c < s.channels; ++c) out[c] = in[c];
        return;
    }
    const float side = (float)(1.0 / 13.0), centre = (float)(5.0 / 13.0);
    const fp_i64 stride = (fp_i64)s.width * s.channels;
    for (int c = 0; c < s.channels; ++c) {
        float total = 0.5f;
        for (int dy = 1; dy >= -1; --dy) {
            const fp_u8* p = in + dy * stride + c;
            const float middle = dy == 0 ? centre : side;
            const float row = __fadd_rn(__fadd_rn(__fmul_rn((float)p[-s.channels], side), __fmul_rn((float)p[0], middle)),
                                        __fmul_rn((float)p[s.channels], side));
            total = __fadd_rn(total, row);
        }
        const int smooth = total <= 0.0f ? 0 : (total >= 255.0f ? 255 : (int)total);
        out[c] = fp_blend(smooth, in[c], fp_value(s, n));
    }
}

__device__ void apply_cutout(const FpSlot& s, int n, int y, int x, fp_u8* out) {
    const int* b = s.box + (fp_i64)n * 4;
    if (y >= b[0] && x >= b[1] && y < b[2] && x < b[3]) {
        for (int c = 0; c < s.channels; ++c) out[c] = FP_FILL;
        return;
    }
    apply_copy(s, n, y, x, out);
}

// SamplePairing: blend with the partner's pixel as it entered the stage.
__device__ void apply_sample_pairing(const FpSlot& s, int n, int y, int x, fp_u8* out) {
    const fp_u8* in = fp_src(s, n, y, x);
    const fp_u8* other = fp_pixel(s, s.orig, s.orig_row[s.partner[n]], y, x);
    for (int c = 0; c < s.channels; ++c) out[c] = fp_blend(in[c], other[c], fp_value(s, n));
}

// Output modes (`out_mode`): the low two bits pick the element type, bit 2 the layout.
// Intermediate slots write FP_OUT_UINT8 (NHWC); the stage's last slot may write any mode,
// fused with normalization for the float types.
#define FP_OUT_UINT8 0
#define FP_OUT_FLOAT32 1
#define FP_OUT_FLOAT16 2
#define FP_OUT_BFLOAT16 3
#define FP_OUT_PLANAR 4   // NCHW; without it NHWC (torch's channels-last memory layout)

// Store `count` consecutive pixels (C values each, in `px`) of sample n from pixel p on, in
// `out_mode` (see above): the one place outputs are written, by the device loop (count 1)
// and by the host loop (a run of a row).
__device__ __forceinline__ void fp_store(void* dst, int out_mode, const float* mean, const float* inv_std, int n,
                                         fp_i64 p, int count, fp_i64 pixels, int channels, const fp_u8* px) {
    const int type = out_mode & 3;
    const bool planar = (out_mode & FP_OUT_PLANAR) != 0;
    if (!planar) {
        const fp_i64 at = ((fp_i64)n * pixels + p) * channels;
        const int values = count * channels;
        if (type == FP_OUT_UINT8) {
            for (int i = 0; i < values; ++i) ((fp_u8*)dst)[at + i] = px[i];
            return;
        }
        for (int i = 0; i < values; ++i) {
            const int c = i % channels;
            const float v = __fmul_rn(__fsub_rn((float)px[i], mean[c]), inv_std[c]);
            if (type == FP_OUT_FLOAT32) ((float*)dst)[at + i] = v;
            else if (type == FP_OUT_FLOAT16) ((fp_u16*)dst)[at + i] = fp_half_bits(v);
            else ((fp_u16*)dst)[at + i] = fp_bfloat16_bits(v);
        }
        return;
    }
    for (int c = 0; c < channels; ++c) {
        const fp_i64 at = ((fp_i64)n * channels + c) * pixels + p;
        if (type == FP_OUT_UINT8) {
            for (int i = 0; i < count; ++i) ((fp_u8*)dst)[at + i] = px[i * channels + c];
            continue;
        }
        const float m = mean[c], scale = inv_std[c];
        for (int i = 0; i < count; ++i) {
            const float v = __fmul_rn(__fsub_rn((float)px[i * channels + c], m), scale);
            if (type == FP_OUT_FLOAT32) ((float*)dst)[at + i] = v;
            else if (type == FP_OUT_FLOAT16) ((fp_u16*)dst)[at + i] = fp_half_bits(v);
            else ((fp_u16*)dst)[at + i] = fp_bfloat16_bits(v);
        }
    }
}

#ifdef FP_HOST_LOOPS
#include "host_rows.hpp"
#endif

// Grid: x over pixels (grid-stride), y over samples (grid-stride).
// packed, header: the batch's packed buffer and this slot's header in it (FpField: per-sample
//      entries, boxes, partners; the op table; the rows of src and orig each sample reads).
// src, orig: uint8 [R, H, W, C], the slot's input and the stage's input; sample n reads
//      src row src_row[n], and SamplePairing's partner p is orig row orig_row[p] (the
//      stage's first slot reads its input in any row order: the loader's image-major copies).
// luts: uint8 [N, C, 256], the tables fp_build_luts wrote (unread where no sample has one).
// dst: [N, H, W, C], or [N, C, H, W] with FP_OUT_PLANAR, of uint8 (the pixel as is) or of
//      float32 / float16 / bfloat16 holding (v - mean[c]) * inv_std[c] computed in float32
//      and rounded to nearest even (mean, inv_std: float32 [C] in pixel units, i.e.
//      mean * 255 and 1 / (std * 255)).
extern "C" __global__ void fp_apply(const fp_u8* __restrict__ packed, const fp_i64* __restrict__ header,
                                    const fp_u8* __restrict__ src, const fp_u8* __restrict__ orig, void* dst,
                                    int out_mode, const float* __restrict__ mean, const float* __restrict__ inv_std,
                                    const fp_u8* __restrict__ luts, int count, int height, int width, int channels,
                                    int fill) {
    const FpSlot s = fp_slot(packed, header, src, orig, luts, height, width, channels, fill);
    const int* code = fp_field<int>(packed, header, FP_E_CODE);
#ifdef FP_HOST_LOOPS
    for (int n = blockIdx.y; n < count; n += gridDim.y) {
        switch (code[s.entry[n]]) {
#define FP_HOST_CASE(index, function) case index: fp_rows_##function(s, n, dst, out_mode, mean, inv_std); break;
            FP_APPLIES(FP_HOST_CASE)
#undef FP_HOST_CASE
            default: fp_rows_apply_copy(s, n, dst, out_mode, mean, inv_std);
        }
    }
#else
    const fp_i64 pixels = (fp_i64)height * width;
    for (int n = blockIdx.y; n < count; n += gridDim.y) {
        const int op = code[s.entry[n]];
        for (fp_i64 p = (fp_i64)blockIdx.x * blockDim.x + threadIdx.x; p < pixels; p += (fp_i64)gridDim.x * blockDim.x) {
            const int y = (int)(p / width), x = (int)(p % width);
            fp_u8 px[3];
            switch (op) {
#define FP_APPLY_CASE(index, function) case index: function(s, n, y, x, px); break;
                FP_APPLIES(FP_APPLY_CASE)
#undef FP_APPLY_CASE
                default: apply_copy(s, n, y, x, px);
            }
            fp_store(dst, out_mode, mean, inv_std, n, p, 1, pixels, channels, px);
        }
    }
#endif
}
