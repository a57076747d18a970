// Reading and writing pixels: the output modes, one pixel's store, and runs of pixels. Each
// thread of the device loops (fp_apply, fp_policy) computes FP_RUN consecutive pixels of one
// row, reads a pointwise op's input with 32-bit loads and writes the run with 32-bit (uint8),
// 64-bit (float16, bfloat16) or 128-bit (float32) stores.
//
// A run's pixels live in three 32-bit registers as one 96-bit little-endian value: pixel j's
// channel c is byte j * C + c (four RGB pixels fill the 12 bytes; four grey pixels, 4). The
// loops move through a run by shifting that value (fp_run_take, fp_run_append), so the
// per-pixel code is one rolled loop body, one copy of the op dispatch, with every byte in a
// register (indexed by a run-time pixel number, an array of bytes would go to local memory).
#pragma once
#include "common.cuh"

// (v - mean) * inv_std in float32, each operation rounded (the normalized outputs).
__device__ __forceinline__ float fp_normalized(int v, float mean, float inv_std) {
    return __fmul_rn(__fsub_rn((float)v, mean), inv_std);
}

// Output modes (`out_mode`): the low two bits pick the element type, bit 2 the layout.
// Intermediate slots write FP_OUT_UINT8 (NHWC); the stage's last slot may write any mode,
// fused with normalization for the float types.
#define FP_OUT_UINT8 0
#define FP_OUT_FLOAT32 1
#define FP_OUT_FLOAT16 2
#define FP_OUT_BFLOAT16 3
#define FP_OUT_PLANAR 4   // NCHW; without it NHWC (torch's channels-last memory layout)

// A normalized value of an output of type `type` (FP_OUT_FLOAT16 or FP_OUT_BFLOAT16) as bits.
__device__ __forceinline__ fp_u32 fp_half_or_bfloat(int type, float v) {
    return type == FP_OUT_FLOAT16 ? fp_half_bits(v) : fp_bfloat16_bits(v);
}

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
        const float v = fp_normalized(px[c], mean[c], inv_std[c]);
        if (type == FP_OUT_FLOAT32) ((float*)dst)[at] = v;
        else ((fp_u16*)dst)[at] = (fp_u16)fp_half_or_bfloat(type, v);
    }
}

#define FP_RUN 4  // pixels per thread, along a row

// The runs of the device loops: `runs` runs of FP_RUN pixels per sample (ceil(W / FP_RUN) per
// row, the last one of a row shorter where W is not a multiple), run q = y * per_row + r
// starting at pixel (y, r * FP_RUN). A loop visits q = start, start + stride, ... and keeps (y,
// r) with one carry per step instead of a division.
struct FpRuns {
    int per_row, y, r, step_y, step_r;
    fp_i64 runs;
    __device__ __forceinline__ FpRuns(int height, int width, fp_i64 start, fp_i64 stride) {
        per_row = (width + FP_RUN - 1) / FP_RUN;
        runs = (fp_i64)height * per_row;
        y = (int)(start / per_row);
        r = (int)(start % per_row);
        step_y = (int)(stride / per_row);
        step_r = (int)(stride % per_row);
    }
    // The current run's first column, and its pixels in a row `width` wide (FP_RUN but at a row's end).
    __device__ __forceinline__ int x0() const { return r * FP_RUN; }
    __device__ __forceinline__ int length(int width) const { return width - r * FP_RUN < FP_RUN ? width - r * FP_RUN : FP_RUN; }
    __device__ __forceinline__ void next() {
        r += step_r;
        y += step_y;
        if (r >= per_row) { r -= per_row; ++y; }
    }
};

// The 96-bit value (w[0], w[1], w[2]) shifted right by `bits` (0 < bits < 32).
__device__ __forceinline__ void fp_run_shift(fp_u32* w, int bits) {
    w[0] = (w[0] >> bits) | (w[1] << (32 - bits));
    w[1] = (w[1] >> bits) | (w[2] << (32 - bits));
    w[2] >>= bits;
}

// The next pixel of a run being read: its C values packed (value c in bits 8c .. 8c + 7).
__device__ __forceinline__ fp_u32 fp_run_take(fp_u32* w, int channels) {
    const fp_u32 v = w[0] & (channels == 3 ? 0xffffffu : 0xffu);
    fp_run_shift(w, 8 * channels);
    return v;
}

// Append a pixel (C values packed as in fp_run_take) to a run being written. After FP_RUN
// appends, the first pixel appended is at byte 0 for C = 3 and at byte 8 for C = 1
// (fp_run_finish moves it to byte 0).
__device__ __forceinline__ void fp_run_append(fp_u32* w, int channels, fp_u32 v) {
    fp_run_shift(w, 8 * channels);
    w[2] |= v << (32 - 8 * channels);
}

__device__ __forceinline__ void fp_run_finish(fp_u32* w, int channels) {
    if (channels == 1) w[0] = w[2];
}

__device__ __forceinline__ fp_u32 fp_pack3(const fp_u8* v) {
    return (fp_u32)v[0] | ((fp_u32)v[1] << 8) | ((fp_u32)v[2] << 16);
}

__device__ __forceinline__ void fp_unpack3(fp_u32 v, fp_u8* out) {
    out[0] = (fp_u8)v;
    out[1] = (fp_u8)(v >> 8);
    out[2] = (fp_u8)(v >> 16);
}

// Memory access of whole words: a 32-bit load through the read-only cache, and stores of
// a vector type (the host builds copy bytes, so no alias rule is bent; the emulator counts
// them, emulate.hpp).
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
__device__ __forceinline__ fp_u32 fp_load32(const fp_u8* p) { return __ldg((const unsigned int*)p); }
template <typename V>
__device__ __forceinline__ void fp_store_vector(void* p, const V& v) { *(V*)p = v; }
typedef float4 FpFloat4;
typedef uint2 FpHalf4;  // four 16-bit values
#else
inline fp_u32 fp_load32(const fp_u8* p) {
#ifdef FP_COUNT_WORDS
    fp_emulate::count_word(0, p, 4);
#endif
    fp_u32 v;
    std::memcpy(&v, p, 4);
    return v;
}
template <typename V>
inline void fp_store_vector(void* p, const V& v) {
#ifdef FP_COUNT_WORDS
    fp_emulate::count_word(1, p, sizeof v);
#endif
    std::memcpy(p, &v, sizeof v);
}
struct alignas(16) FpFloat4 { float x, y, z, w; };
struct alignas(8) FpHalf4 { fp_u32 x, y; };
#endif

__device__ __forceinline__ bool fp_aligned(const void* p, int bytes) {
    return ((unsigned long long)p & (unsigned long long)(bytes - 1)) == 0;
}

// The k pixels (k <= FP_RUN) at `in` (C values each) as a run (w[3], see the top): whole
// words where the run is full and 4-byte aligned (always so for widths that are multiples of
// 4, as 224 is), else byte by byte.
__device__ __forceinline__ void fp_run_load(const fp_u8* in, int k, int channels, fp_u32* w) {
    if (k == FP_RUN && fp_aligned(in, 4)) {
        w[0] = fp_load32(in);
        w[1] = channels == 3 ? fp_load32(in + 4) : 0u;
        w[2] = channels == 3 ? fp_load32(in + 8) : 0u;
        return;
    }
    w[0] = w[1] = w[2] = 0u;
    const int bytes = k * channels;
#pragma unroll 1
    for (int b = 0; b < 12; ++b) {  // shifted in at the top: after 12, byte 0 is at the bottom
        fp_run_shift(w, 8);
        if (b < bytes) w[2] |= (fp_u32)FP_LDG(in + b) << 24;
    }
}

// Byte b (a constant after unrolling) of a run.
__device__ __forceinline__ int fp_run_byte(const fp_u32* w, int b) { return (int)((w[b >> 2] >> (8 * (b & 3))) & 0xffu); }

// A full run (FP_RUN pixels of C channels, w as after fp_run_finish) stored as vectors at
// element offset `at` (NHWC: C * FP_RUN consecutive elements) or, planar, at `at` + c *
// `plane` for channel c (FP_RUN consecutive elements each): 4-byte words of uint8, 8-byte
// words of four float16/bfloat16, 16-byte words of four float32. The caller checked alignment.
template <int C>
__device__ __forceinline__ void fp_run_store_vectors(void* dst, int type, bool planar, const float* mean,
                                                     const float* inv_std, fp_i64 at, fp_i64 plane, const fp_u32* w) {
    if (type == FP_OUT_UINT8 && !planar) {  // the run's bytes are the output's, in order
#pragma unroll
        for (int q = 0; q < C; ++q) fp_store_vector((fp_u8*)dst + at + 4 * q, w[q]);
        return;
    }
#pragma unroll
    for (int q = 0; q < C; ++q) {  // q: the run's q-th group of 4 elements (NHWC) or channel q (planar)
        int byte[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) byte[i] = fp_run_byte(w, planar ? i * C + q : 4 * q + i);
        const fp_i64 offset = planar ? at + q * plane : at + 4 * q;
        if (type == FP_OUT_UINT8) {
            const fp_u32 word = (fp_u32)byte[0] | ((fp_u32)byte[1] << 8) | ((fp_u32)byte[2] << 16) | ((fp_u32)byte[3] << 24);
            fp_store_vector((fp_u8*)dst + offset, word);
            continue;
        }
        float v[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int c = planar ? q : (4 * q + i) % C;
            v[i] = fp_normalized(byte[i], mean[c], inv_std[c]);
        }
        if (type == FP_OUT_FLOAT32) {
            FpFloat4 f;
            f.x = v[0]; f.y = v[1]; f.z = v[2]; f.w = v[3];
            fp_store_vector((float*)dst + offset, f);
        } else {
            // one copy of the conversion, in a rolled loop: the values move down v[], the bits
            // come in at the top of h (16 bits per value; after 4, value 0 is in h.x's low half)
            FpHalf4 h;
            h.x = h.y = 0u;
#pragma unroll 1
            for (int i = 0; i < 4; ++i) {
                const fp_u32 bits = fp_half_or_bfloat(type, v[0]);
                v[0] = v[1], v[1] = v[2], v[2] = v[3];
                h.x = (h.x >> 16) | (h.y << 16);
                h.y = (h.y >> 16) | (bits << 16);
            }
            fp_store_vector((fp_u16*)dst + offset, h);
        }
    }
}

// Store a run of k pixels (k <= FP_RUN; w as after fp_run_finish) of sample n starting at
// pixel p = y * W + x of the output (`out_mode`, as fp_store): as vectors where the run is
// full and every vector's address is aligned to its size, else pixel by pixel. Consumes w.
__device__ __forceinline__ void fp_run_store(void* dst, int out_mode, const float* mean, const float* inv_std, int n,
                                             fp_i64 p, fp_i64 pixels, int channels, int k, fp_u32* w) {
    const int type = out_mode & 3;
    const bool planar = (out_mode & FP_OUT_PLANAR) != 0;
    const int element = type == FP_OUT_UINT8 ? 1 : (type == FP_OUT_FLOAT32 ? 4 : 2);  // bytes
    const fp_i64 at = planar ? (fp_i64)n * channels * pixels + p : ((fp_i64)n * pixels + p) * channels;
    if (k == FP_RUN && fp_aligned((const fp_u8*)dst + at * element, 4 * element) &&
        (!planar || channels == 1 || (pixels * element) % (4 * element) == 0)) {
        if (channels == 3) fp_run_store_vectors<3>(dst, type, planar, mean, inv_std, at, pixels, w);
        else fp_run_store_vectors<1>(dst, type, planar, mean, inv_std, at, pixels, w);
        return;
    }
#pragma unroll 1
    for (int j = 0; j < k; ++j) {
        fp_u8 px[3];
        fp_unpack3(fp_run_take(w, channels), px);
        fp_store(dst, out_mode, mean, inv_std, n, p + j, pixels, channels, px);
    }
}
