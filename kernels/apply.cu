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
    const fp_u8* luts;     // uint8 [N, C, 256]: tables of lut ops (sample n's at n * lut_stride)
    int lut_stride;        // C * 256; 0 where `luts` is one sample's tables (fused.cu)
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
    s.lut_stride = channels * 256;
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

// The slot input in memory: sample n's pixel (y, x) of `src` (rows src_row).
struct FpMemory {
    __device__ __forceinline__ void get(const FpSlot& s, int n, int y, int x, fp_u8* out) const {
        const fp_u8* in = fp_src(s, n, y, x);
        FP_EACH_CHANNEL(c, s.channels) out[c] = FP_LDG(in + c);
    }
};

// Every apply function reads its input through `in` (In::get(s, n, y, x, out): the C values
// of the slot input's pixel (y, x), in range): FpMemory for a slot whose input is in
// memory, FpFirst (fused.cu) for a second slot composed pixel by pixel with the first.
template <class In>
__device__ void apply_copy(const FpSlot& s, const In& in, int n, int y, int x, fp_u8* out) {
    in.get(s, n, y, x, out);
}

template <class In>
__device__ __forceinline__ void fp_take(const FpSlot& s, const In& in, int n, int row, int col, fp_u8* out) {
    if (row < 0 || col < 0 || row >= s.height || col >= s.width) {
        FP_EACH_CHANNEL(c, s.channels) out[c] = (fp_u8)s.fill;
        return;
    }
    in.get(s, n, row, col, out);
}

// Shear and rotation: PIL's affine_fixed, ((a2 + y a1 + x a0) >> 16, (a5 + y a4 + x a3) >> 16).
template <class In>
__device__ void apply_warp(const FpSlot& s, const In& in, int n, int y, int x, fp_u8* out) {
    const fp_i64* a = s.fixed + (fp_i64)s.entry[n] * 6;
    const fp_i64 col = (a[2] + y * a[1] + x * a[0]) >> 16;
    const fp_i64 row = (a[5] + y * a[4] + x * a[3]) >> 16;
    if (col < 0 || col >= s.width || row < 0 || row >= s.height) { fp_take(s, in, n, -1, -1, out); return; }
    fp_take(s, in, n, (int)row, (int)col, out);
}

// Translation (PIL's float64 scale/translate engine): per-row and per-column source tables.
template <class In>
__device__ void apply_shift(const FpSlot& s, const In& in, int n, int y, int x, fp_u8* out) {
    const fp_i64 t = s.shift[s.entry[n]];
    fp_take(s, in, n, s.rows[t * s.height + y], s.cols[t * s.width + x], out);
}

template <class In>
__device__ void apply_lut(const FpSlot& s, const In& in, int n, int y, int x, fp_u8* out) {
    fp_u8 v[3];
    in.get(s, n, y, x, v);
    const fp_u8* table = s.luts + (fp_i64)n * s.lut_stride;
    FP_EACH_CHANNEL(c, s.channels) out[c] = table[256 * c + v[c]];
}

// Color: blend with the pixel's own grey (L) level.
template <class In>
__device__ void apply_color(const FpSlot& s, const In& in, int n, int y, int x, fp_u8* out) {
    fp_u8 v[3];
    in.get(s, n, y, x, v);
    const int grey = s.channels == 3 ? fp_luminance(v[0], v[1], v[2]) : v[0];
    FP_EACH_CHANNEL(c, s.channels) out[c] = fp_blend(grey, v[c], fp_value(s, n));
}

// Sharpness: blend with PIL's SMOOTH 3x3 filter (float32, rows y+1, y, y-1; border kept).
// The 9 neighbours are read through `in` in a rolled loop (one copy of `in`: under FpFirst a
// call each); reading an input in memory in place instead takes 72 registers, not 56, on sm_90.
template <class In>
__device__ void apply_sharpness(const FpSlot& s, const In& in, int n, int y, int x, fp_u8* out) {
    if (y == 0 || x == 0 || y >= s.height - 1 || x >= s.width - 1) {
        in.get(s, n, y, x, out);
        return;
    }
    fp_u8 p[3][3][3];  // [1 - dy][1 + dx][c]
#pragma unroll 1
    for (int k = 0; k < 9; ++k) in.get(s, n, y + 1 - k / 3, x - 1 + k % 3, p[k / 3][k % 3]);  // one copy of `in`
    const float side = (float)(1.0 / 13.0), centre = (float)(5.0 / 13.0);
    FP_EACH_CHANNEL(c, s.channels) {
        float total = 0.5f;
        for (int r = 0; r < 3; ++r) {
            const float middle = r == 1 ? centre : side;
            const float row = __fadd_rn(__fadd_rn(__fmul_rn((float)p[r][0][c], side), __fmul_rn((float)p[r][1][c], middle)),
                                        __fmul_rn((float)p[r][2][c], side));
            total = __fadd_rn(total, row);
        }
        const int smooth = total <= 0.0f ? 0 : (total >= 255.0f ? 255 : (int)total);
        out[c] = fp_blend(smooth, p[1][1][c], fp_value(s, n));
    }
}

template <class In>
__device__ void apply_cutout(const FpSlot& s, const In& in, int n, int y, int x, fp_u8* out) {
    const int* b = s.box + (fp_i64)n * 4;
    if (y >= b[0] && x >= b[1] && y < b[2] && x < b[3]) {
        FP_EACH_CHANNEL(c, s.channels) out[c] = FP_FILL;
        return;
    }
    in.get(s, n, y, x, out);
}

// SamplePairing: blend with the partner's pixel as it entered the stage.
template <class In>
__device__ void apply_sample_pairing(const FpSlot& s, const In& in, int n, int y, int x, fp_u8* out) {
    fp_u8 v[3];
    in.get(s, n, y, x, v);
    const fp_u8* other = fp_pixel(s, s.orig, s.orig_row[s.partner[n]], y, x);
    FP_EACH_CHANNEL(c, s.channels) out[c] = fp_blend(v[c], FP_LDG(other + c), fp_value(s, n));
}

// Sample n's output pixel (y, x) of a slot whose op is `code` (FP_APPLIES), input through `in`.
template <class In>
__device__ __forceinline__ void fp_dispatch(const FpSlot& s, const In& in, int code, int n, int y, int x, fp_u8* out) {
    switch (code) {
#define FP_DISPATCH_CASE(index, function) case index: function<In>(s, in, n, y, x, out); break;
        FP_APPLIES(FP_DISPATCH_CASE)
#undef FP_DISPATCH_CASE
        default: apply_copy<In>(s, in, n, y, x, out);
    }
}

// Output modes (`out_mode`): the low two bits pick the element type, bit 2 the layout.
// Intermediate slots write FP_OUT_UINT8 (NHWC); the stage's last slot may write any mode,
// fused with normalization for the float types.
#define FP_OUT_UINT8 0
#define FP_OUT_FLOAT32 1
#define FP_OUT_FLOAT16 2
#define FP_OUT_BFLOAT16 3
#define FP_OUT_PLANAR 4   // NCHW; without it NHWC (torch's channels-last memory layout)

// Store pixel p of sample n (C values in `px`) in `out_mode` (see above): the one place the
// device loops write outputs (the host loop stores runs with fp_store_run).
__device__ __forceinline__ void fp_store(void* dst, int out_mode, const float* mean, const float* inv_std, int n,
                                         fp_i64 p, fp_i64 pixels, int channels, const fp_u8* px) {
    const int type = out_mode & 3;
    const bool planar = (out_mode & FP_OUT_PLANAR) != 0;
    FP_EACH_CHANNEL(c, channels) {
        const fp_i64 at = planar ? ((fp_i64)n * channels + c) * pixels + p : ((fp_i64)n * pixels + p) * channels + c;
        if (type == FP_OUT_UINT8) {
            ((fp_u8*)dst)[at] = px[c];
            continue;
        }
        const float v = __fmul_rn(__fsub_rn((float)px[c], mean[c]), inv_std[c]);
        if (type == FP_OUT_FLOAT32) ((float*)dst)[at] = v;
        else if (type == FP_OUT_FLOAT16) ((fp_u16*)dst)[at] = fp_half_bits(v);
        else ((fp_u16*)dst)[at] = fp_bfloat16_bits(v);
    }
}

#ifdef FP_HOST_LOOPS
#include "host_rows.hpp"
#endif

// Grid: x over pixels (grid-stride), y over samples (grid-stride); blocks of at most 256
// threads, registers for 5 resident blocks (48 per thread: 40 warps per SM on sm_80 and
// sm_90, no spills; ptxas would otherwise take 63 on sm_80).
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
extern "C" __global__ void FP_LAUNCH_BOUNDS(256, 5) fp_apply(const fp_u8* __restrict__ packed, const fp_i64* __restrict__ header,
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
    // Pixel p = y * width + x of a grid-stride loop: (y, x) grows by the stride's (rows,
    // columns) with one carry, no division per pixel.
    const fp_i64 start = (fp_i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (fp_i64)gridDim.x * blockDim.x;
    const int y0 = (int)(start / width), x0 = (int)(start % width);
    const int step_y = (int)(stride / width), step_x = (int)(stride % width);
    for (int n = blockIdx.y; n < count; n += gridDim.y) {
        const int op = code[s.entry[n]];
        int y = y0, x = x0;
        for (fp_i64 p = start; p < pixels; p += stride) {
            fp_u8 px[3];
            fp_dispatch(s, FpMemory(), op, n, y, x, px);
            fp_store(dst, out_mode, mean, inv_std, n, p, pixels, channels, px);
            x += step_x;
            y += step_y;
            if (x >= width) { x -= width; ++y; }
        }
    }
#endif
}
