// Applying one op slot to every sample: each thread computes runs of FP_RUN output pixels
// (runs.cuh). Each sample's op picks an `apply_*` function through its code (FP_APPLIES,
// generated from the registry); each reads the slot input and writes the C values of one pixel.
#pragma once
#include "common.cuh"
#include "runs.cuh"

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

// The slot input in memory: sample n's pixel (y, x) of `src` (rows src_row); `run`: its k
// pixels (y, x0 ..) as a run (runs.cuh), read as words.
struct FpMemory {
    __device__ __forceinline__ void get(const FpSlot& s, int n, int y, int x, fp_u8* out) const {
        const fp_u8* in = fp_src(s, n, y, x);
        FP_EACH_CHANNEL(c, s.channels) out[c] = FP_LDG(in + c);
    }
    __device__ __forceinline__ void run(const FpSlot& s, int n, int y, int x0, int k, fp_u32* w) const {
        fp_run_load(fp_src(s, n, y, x0), k, s.channels, w);
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

// Shear and rotation: PIL's affine_fixed, ((a2 + y a1 + x a0) >> 16, (a5 + y a4 + x a3) >> 16),
// in 32 bits: the packer gives a warp this function only where both sums lie in int32 at the
// image's four corners, hence (being affine) at every pixel (fastpolicy/backends/kernel_pack.py:
// narrow_warp). They are computed modulo 2^32 (unsigned: a product may wrap, the sum does not),
// so the integers are those of the int64 form below.
template <class In>
__device__ void apply_warp(const FpSlot& s, const In& in, int n, int y, int x, fp_u8* out) {
    const fp_i64* a = s.fixed + (fp_i64)s.entry[n] * 6;
    const fp_u32 u = (fp_u32)x, v = (fp_u32)y;
    const int col = (int)((fp_u32)a[2] + v * (fp_u32)a[1] + u * (fp_u32)a[0]) >> 16;
    const int row = (int)((fp_u32)a[5] + v * (fp_u32)a[4] + u * (fp_u32)a[3]) >> 16;
    fp_take(s, in, n, row, col, out);
}

// The same in int64, for a warp whose sums leave int32 somewhere in the image (none of the
// registry's warps within PIL's fixed-point domain; a near-degenerate matrix could).
template <class In>
__device__ void apply_warp_wide(const FpSlot& s, const In& in, int n, int y, int x, fp_u8* out) {
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

// A pixel value as a slot input: the input of an op that reads only its own pixel (y, x).
struct FpValue {
    const fp_u8* v;
    __device__ __forceinline__ void get(const FpSlot& s, int, int, int, fp_u8* out) const {
        FP_EACH_CHANNEL(c, s.channels) out[c] = v[c];
    }
};

// Whether an apply function reads its input elsewhere than at its own pixel (the gathers).
template <void (*apply)(const FpSlot&, const FpValue&, int, int, int, fp_u8*)>
__device__ constexpr bool fp_gathers() {
    return apply == apply_warp<FpValue> || apply == apply_warp_wide<FpValue> || apply == apply_shift<FpValue> ||
           apply == apply_sharpness<FpValue>;
}

__device__ __forceinline__ bool fp_gathers(int code) {
    switch (code) {
#define FP_GATHERS_CASE(index, function) case index: return fp_gathers<function<FpValue>>();
        FP_APPLIES(FP_GATHERS_CASE)
#undef FP_GATHERS_CASE
        default: return false;
    }
}

// fp_dispatch for a gathering op (`code`: fp_gathers(code)), its input through `in`.
template <class In>
__device__ __forceinline__ void fp_dispatch_gather(const FpSlot& s, const In& in, int code, int n, int y, int x,
                                                   fp_u8* out) {
    switch (code) {
#define FP_GATHER_CASE(index, function) \
    case index: if constexpr (fp_gathers<function<FpValue>>()) function<In>(s, in, n, y, x, out); break;
        FP_APPLIES(FP_GATHER_CASE)
#undef FP_GATHER_CASE
        default: break;
    }
}

// fp_dispatch for an op that reads only its own pixel, whose input value is `v` (C values).
__device__ __forceinline__ void fp_dispatch_point(const FpSlot& s, int code, int n, int y, int x, const fp_u8* v,
                                                  fp_u8* out) {
    FpValue value;
    value.v = v;
    switch (code) {
#define FP_POINT_CASE(index, function) \
    case index: if constexpr (!fp_gathers<function<FpValue>>()) function<FpValue>(s, value, n, y, x, out); break;
        FP_APPLIES(FP_POINT_CASE)
#undef FP_POINT_CASE
        default: apply_copy<FpValue>(s, value, n, y, x, out);
    }
}

#ifdef FP_HOST_LOOPS
#include "host_rows.hpp"
#endif

// Grid: x over runs of FP_RUN pixels (grid-stride), y over samples (grid-stride); blocks of
// at most 256 threads, registers for 6 resident blocks (40 per thread: 48 warps per SM, no
// spills; docs/kernels.md has ptxas's figures).
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
extern "C" __global__ void FP_LAUNCH_BOUNDS(256, 6) fp_apply(const fp_u8* __restrict__ packed, const fp_i64* __restrict__ header,
                                    const fp_u8* __restrict__ src, const fp_u8* __restrict__ orig, void* dst,
                                    int out_mode, const float* __restrict__ mean, const float* __restrict__ inv_std,
                                    const fp_u8* __restrict__ luts, int count, int height, int width, int channels,
                                    int fill) {
    const int* code = fp_field<int>(packed, header, FP_E_CODE);
#ifdef FP_HOST_LOOPS
    // The row loops take the fields as a local copy: their stores cannot alias it, so the
    // compiler keeps the fields in registers (through a reference to a thread_local copy it
    // reloads them after every store: 0.7-0.8x on the fastest ops).
    const FpSlot s = fp_slot(packed, header, src, orig, luts, height, width, channels, fill);
    for (int n = blockIdx.y; n < count; n += gridDim.y) {
        switch (code[s.entry[n]]) {
#define FP_HOST_CASE(index, function) case index: fp_rows_##function(s, n, dst, out_mode, mean, inv_std); break;
            FP_APPLIES(FP_HOST_CASE)
#undef FP_HOST_CASE
            default: fp_rows_apply_copy(s, n, dst, out_mode, mean, inv_std);
        }
    }
#else
    // The slot's fields in shared memory, one copy per block: read where used, they hold no
    // registers across the loop (in each thread's registers they take about 26); the tables
    // are the copy of sample n's in `table`.
    __shared__ FpSlot slot;
    __shared__ fp_u8 table[3 * 256];
    if (threadIdx.x == 0) {
        slot = fp_slot(packed, header, src, orig, table, height, width, channels, fill);
        slot.lut_stride = 0;
    }
    __syncthreads();
    const FpSlot& s = slot;
    const fp_i64 pixels = (fp_i64)height * width;
    const fp_i64 start = (fp_i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (fp_i64)gridDim.x * blockDim.x;
    const int* lut_kind = fp_field<int>(packed, header, FP_E_LUT);
    for (int n = blockIdx.y; n < count; n += gridDim.y) {
        const int e = s.entry[n], op = code[e];
        const bool gathers = fp_gathers(op);
        __syncthreads();  // the previous sample's table is read no more
        if (lut_kind[e] >= 0)
            for (int i = threadIdx.x; i < channels * 256; i += blockDim.x) table[i] = luts[(fp_i64)n * channels * 256 + i];
        __syncthreads();
        FpRuns at(height, width, start, stride);
        for (fp_i64 q = start; q < at.runs; q += stride, at.next()) {
            const int x0 = at.x0(), k = at.length(width);
            fp_u32 in[3] = {0u, 0u, 0u}, out[3] = {0u, 0u, 0u};
            if (!gathers) fp_run_load(fp_src(s, n, at.y, x0), k, channels, in);
#pragma unroll 1
            for (int j = 0; j < FP_RUN; ++j) {
                fp_u8 px[3] = {0, 0, 0};
                if (j < k) {
                    if (gathers) {
                        fp_dispatch_gather(s, FpMemory(), op, n, at.y, x0 + j, px);
                    } else {
                        fp_u8 v[3];
                        fp_unpack3(fp_run_take(in, channels), v);
                        fp_dispatch_point(s, op, n, at.y, x0 + j, v, px);
                    }
                }
                fp_run_append(out, channels, fp_pack3(px));
            }
            fp_run_finish(out, channels);
            fp_run_store(dst, out_mode, mean, inv_std, n, (fp_i64)at.y * width + x0, pixels, channels, k, out);
        }
    }
#endif
}
