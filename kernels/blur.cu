// GaussianBlur: PIL's ImageFilter.GaussianBlur (fastpolicy/reference/blur.py), three extended
// box passes along the rows, then three along the columns, each pass rounded to uint8.
//
// fp_blur runs after a slot's fp_apply (which copied the blurred samples' input) and writes the
// blurred samples' rows of the slot's output over that copy (fastpolicy/backends/kernel_stage.py).
// A pass computes, in 32-bit integers, for the line through each pixel (its ends clamped):
//     out[x] = (ww * sum_{|d| <= r} p[x + d] + fw * (p[x - r - 1] + p[x + r + 1]) + 2^23) >> 24
// with (r, ww, fw) from the box radius (fastpolicy.reference.blur.box_weights, on the host).
// The sum is at most 255 * 2^24 + 2^23 < 2^32: no pass can wrap.
#pragma once
#include "common.cuh"

__device__ __forceinline__ int fp_clamp_index(int i, int length) { return i < 0 ? 0 : (i >= length ? length - 1 : i); }

// Element `at` of a line of `length` elements `step` apart: one pass's output value.
__device__ __forceinline__ fp_u8 fp_box_value(const fp_u8* line, fp_i64 step, int at, int length, int r, fp_u32 ww,
                                              fp_u32 fw) {
    fp_u32 inside = 0;
    for (int d = -r; d <= r; ++d) inside += line[fp_clamp_index(at + d, length) * step];
    const fp_u32 far = (fp_u32)line[fp_clamp_index(at - r - 1, length) * step] +
                       (fp_u32)line[fp_clamp_index(at + r + 1, length) * step];
    return (fp_u8)((inside * ww + far * fw + (1u << 23)) >> 24);
}

#ifdef FP_HOST_LOOPS
// One thread per sample (kernels/host.hpp): passes over rows, then columns, as loops over
// contiguous elements the compiler vectorizes where r is 0 or 1 (every GaussianBlur of
// deviation below √6 ≈ 2.45 pixels: timm's); the line ends, and other r, element by element.
template <int R>
static inline void fp_box_run(const fp_u8* __restrict__ in, fp_u8* __restrict__ o, fp_i64 step, fp_i64 begin,
                              fp_i64 end, fp_u32 ww, fp_u32 fw) {
    FP_SIMD for (fp_i64 e = begin; e < end; ++e) {
        fp_u32 inside = in[e];
        if (R == 1) inside += (fp_u32)in[e - step] + in[e + step];
        const fp_u32 far = (fp_u32)in[e - (R + 1) * step] + in[e + (R + 1) * step];
        o[e] = (fp_u8)((inside * ww + far * fw + (1u << 23)) >> 24);
    }
}

static void fp_box_rows(const fp_u8* __restrict__ in, fp_u8* __restrict__ out, int height, int width, int channels,
                        int r, fp_u32 ww, fp_u32 fw) {
    const fp_i64 row = (fp_i64)width * channels;
    for (int y = 0; y < height; ++y) {
        const fp_u8* line = in + y * row;
        fp_u8* o = out + y * row;
        int x0 = 0, x1 = 0;  // [x0, x1): the pixels whose taps all lie inside the row
        if (r <= 1 && width > 2 * r + 2) {
            x0 = r + 1, x1 = width - r - 1;
            if (r == 0) fp_box_run<0>(line, o, channels, (fp_i64)x0 * channels, (fp_i64)x1 * channels, ww, fw);
            else fp_box_run<1>(line, o, channels, (fp_i64)x0 * channels, (fp_i64)x1 * channels, ww, fw);
        }
        for (int x = 0; x < width; ++x) {
            if (x == x0 && x1 > x0) x = x1;
            for (int c = 0; c < channels; ++c)
                o[(fp_i64)x * channels + c] = fp_box_value(line + c, channels, x, width, r, ww, fw);
        }
    }
}

static void fp_box_columns(const fp_u8* __restrict__ in, fp_u8* __restrict__ out, int height, int width,
                           int channels, int r, fp_u32 ww, fp_u32 fw) {
    const fp_i64 row = (fp_i64)width * channels;
    for (int y = 0; y < height; ++y) {
        fp_u8* __restrict__ o = out + y * row;
        if (r <= 1 && y > r && y < height - r - 1) {  // every tap inside the image
            if (r == 0) fp_box_run<0>(in, o - y * row, row, y * row, (y + 1) * row, ww, fw);
            else fp_box_run<1>(in, o - y * row, row, y * row, (y + 1) * row, ww, fw);
            continue;
        }
        for (fp_i64 e = 0; e < row; ++e) o[e] = fp_box_value(in + e, row, y, height, r, ww, fw);
    }
}
#endif

// items: int32 [count, 5], per blurred sample: its input's row of src, its output's row of dst,
//     then r, ww, fw of its passes; scratch: uint8 [gridDim.x, 2, H, W, C] (two images a block).
// src, dst: uint8 [R, H, W, C]. A block per sample (grid-stride over the samples, each block
// reusing its scratch), its threads over the pixels of each pass, a barrier after every pass.
extern "C" __global__ void FP_LAUNCH_BOUNDS(256, 1) fp_blur(const fp_u8* __restrict__ src, fp_u8* dst,
                                                            const int* __restrict__ items, fp_u8* scratch, int count,
                                                            int height, int width, int channels) {
    const fp_i64 size = (fp_i64)height * width * channels;
    for (int b = blockIdx.x; b < count; b += gridDim.x) {
        const int* item = items + (fp_i64)b * 5;
        const int r = item[2];
        const fp_u32 ww = (fp_u32)item[3], fw = (fp_u32)item[4];
        fp_u8* one = scratch + (fp_i64)blockIdx.x * 2 * size;
        fp_u8* two = one + size;
        const fp_u8* from[6] = {src + (fp_i64)item[0] * size, one, two, one, two, one};
        fp_u8* to[6] = {one, two, one, two, one, dst + (fp_i64)item[1] * size};
        for (int pass = 0; pass < 6; ++pass) {
            const bool columns = pass >= 3;
#ifdef FP_HOST_LOOPS
            if (columns)
                fp_box_columns(from[pass], to[pass], height, width, channels, r, ww, fw);
            else
                fp_box_rows(from[pass], to[pass], height, width, channels, r, ww, fw);
#else
            const fp_i64 step = columns ? (fp_i64)width * channels : channels;
            const int length = columns ? height : width;
            for (fp_i64 i = threadIdx.x; i < size; i += blockDim.x) {
                const fp_i64 pixel = i / channels;
                const int at = columns ? (int)(pixel / width) : (int)(pixel % width);
                to[pass][i] = fp_box_value(from[pass] + (i - at * step), step, at, length, r, ww, fw);
            }
            __syncthreads();  // the pass is written before the next reads it
#endif
        }
    }
}
