// Per-image statistics of the ops that need them (AutoContrast, Equalize, Contrast):
// 256-bin histograms of every channel and of PIL's grey (L) image.
#pragma once
#include "common.cuh"
#include "runs.cuh"

// packed, header: the batch's packed buffer and the slot's header (FpField, apply.cu): the
//       samples whose op needs statistics are lut_samples[0 .. S), sample n is row src_row[n].
// images: uint8 [R, H, W, C] (C = 1 or 3), the slot's input.
// first: the listed sample of blockIdx.y = 0 (launches of at most 65535 rows of blocks).
// hist: uint32 [S, 1024] from row `first` on, zeroed by the caller; row s gets R, G, B, L at
//       0, 256, 512, 768 (C = 3) or the grey histogram at 0 (C = 1).
#ifdef FP_HOST_LOOPS
// The native CPU stage's histograms (kernels/host.hpp: one block per sample, one thread):
// plain increments into 4 interleaved copies (consecutive equal values would otherwise wait
// on each other's store), summed at the end; only what the sample's table builder reads
// (FP_LUT_STATISTICS, generated from the registry's `stats`: Contrast reads the grey
// histogram, AutoContrast and Equalize the channels'; an unknown builder gets both).
static inline void fp_host_statistics_read(int lut, bool* grey, bool* channels) {
    *grey = *channels = true;
    switch (lut) {
#define FP_HOST_STATISTICS_CASE(code, reads_grey, reads_channels) \
    case code: *grey = reads_grey, *channels = reads_channels; break;
        FP_LUT_STATISTICS(FP_HOST_STATISTICS_CASE)
#undef FP_HOST_STATISTICS_CASE
    }
}

// Pixels [begin, end) of `image` (uint8 [pixels, C]) added to `out` (FP_HIST_STRIDE bins).
static void fp_host_histogram(const fp_u8* __restrict__ image, fp_i64 begin, fp_i64 end, int channels, int lut,
                              fp_u32* __restrict__ out) {
    bool grey, colour;
    fp_host_statistics_read(lut, &grey, &colour);
    grey = grey && channels == 3;
    colour = colour || channels == 1;  // a grey image's L histogram is its channel's
    alignas(64) fp_u32 h[4][FP_HIST_STRIDE];
    std::memset(h, 0, sizeof h);
    const fp_i64 count = end - begin;
    const fp_u8* __restrict__ px = image + begin * channels;
    if (channels == 1) {
        fp_i64 p = 0;
        for (; p + 4 <= count; p += 4) ++h[0][px[p]], ++h[1][px[p + 1]], ++h[2][px[p + 2]], ++h[3][px[p + 3]];
        for (; p < count; ++p) ++h[0][px[p]];
    } else {
        for (fp_i64 p = 0; p < count; ++p) {
            const fp_u8* __restrict__ q = px + 3 * p;
            fp_u32* __restrict__ k = h[p & 3];
            if (colour) ++k[q[0]], ++k[256 + q[1]], ++k[512 + q[2]];
            if (grey) ++k[768 + fp_luminance(q[0], q[1], q[2])];
        }
    }
    for (int i = 0; i < FP_HIST_STRIDE; ++i) {
        const fp_u32 total = h[0][i] + h[1][i] + h[2][i] + h[3][i];
        if (total) atomicAdd(&out[i], total);
    }
}
#endif

// One pixel (C values packed, value c in bits 8c .. 8c + 7) counted into a shared histogram
// (FP_HIST_STRIDE bins: R, G, B, L for C = 3, grey at 0 for C = 1).
__device__ __forceinline__ void fp_count(fp_u32* hist, fp_u32 v, int channels) {
    if (channels == 3) {
        const int r = (int)(v & 0xffu), g = (int)((v >> 8) & 0xffu), b = (int)(v >> 16);
        atomicAdd(&hist[r], 1u);
        atomicAdd(&hist[256 + g], 1u);
        atomicAdd(&hist[512 + b], 1u);
        atomicAdd(&hist[768 + fp_luminance(r, g, b)], 1u);
    } else {
        atomicAdd(&hist[v], 1u);
    }
}

extern "C" __global__ void FP_LAUNCH_BOUNDS(256, 8) fp_histograms(const fp_u8* __restrict__ packed, const fp_i64* __restrict__ header,
                                         const fp_u8* __restrict__ images, int height, int width, int channels,
                                         int first, fp_u32* __restrict__ hist) {
    const int* samples = fp_field<int>(packed, header, FP_LUT_SAMPLES) + first;
    const int* rows = fp_field<int>(packed, header, FP_SRC_ROW);
#ifdef FP_HOST_LOOPS
    {
        const int n = samples[blockIdx.y];
        const int lut = fp_field<int>(packed, header, FP_E_LUT)[fp_field<int>(packed, header, FP_CODE)[n]];
        const fp_i64 pixels = (fp_i64)height * width;
        fp_host_histogram(images + (fp_i64)rows[n] * pixels * channels, pixels * blockIdx.x / gridDim.x,
                          pixels * (blockIdx.x + 1) / gridDim.x, channels, lut,
                          hist + (fp_i64)blockIdx.y * FP_HIST_STRIDE);
        return;
    }
#endif
    __shared__ fp_u32 local[FP_HIST_STRIDE];
    for (int i = threadIdx.x; i < FP_HIST_STRIDE; i += blockDim.x) local[i] = 0;
    __syncthreads();
    const fp_i64 pixels = (fp_i64)height * width;
    const fp_u8* image = images + (fp_i64)rows[samples[blockIdx.y]] * pixels * channels;
    const fp_i64 start = (fp_i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (fp_i64)gridDim.x * blockDim.x;
    FpRuns at(height, width, start, stride);  // runs of FP_RUN pixels, read as words
    for (fp_i64 q = start; q < at.runs; q += stride, at.next()) {
        const int x0 = at.x0(), k = at.length(width);
        fp_u32 w[3];
        fp_run_load(image + ((fp_i64)at.y * width + x0) * channels, k, channels, w);
#pragma unroll 1
        for (int j = 0; j < k; ++j) fp_count(local, fp_run_take(w, channels), channels);
    }
    __syncthreads();
    fp_u32* out = hist + (fp_i64)blockIdx.y * FP_HIST_STRIDE;
    for (int i = threadIdx.x; i < FP_HIST_STRIDE; i += blockDim.x)
        if (local[i]) atomicAdd(&out[i], local[i]);
}
