// Per-image statistics of the ops that need them (AutoContrast, Equalize, Contrast):
// 256-bin histograms of every channel and of PIL's grey (L) image.
#pragma once
#include "common.cuh"

// packed, header: the batch's packed buffer and the slot's header (FpField, apply.cu): the
//       samples whose op needs statistics are lut_samples[0 .. S), sample n is row src_row[n].
// images: uint8 [R, H, W, C] (C = 1 or 3), the slot's input.
// first: the listed sample of blockIdx.y = 0 (launches of at most 65535 rows of blocks).
// hist: uint32 [S, 1024] from row `first` on, zeroed by the caller; row s gets R, G, B, L at
//       0, 256, 512, 768 (C = 3) or the grey histogram at 0 (C = 1).
extern "C" __global__ void fp_histograms(const fp_u8* __restrict__ packed, const fp_i64* __restrict__ header,
                                         const fp_u8* __restrict__ images, int height, int width, int channels,
                                         int first, fp_u32* __restrict__ hist) {
    const int* samples = fp_field<int>(packed, header, FP_LUT_SAMPLES) + first;
    const int* rows = fp_field<int>(packed, header, FP_SRC_ROW);
    __shared__ fp_u32 local[FP_HIST_STRIDE];
    for (int i = threadIdx.x; i < FP_HIST_STRIDE; i += blockDim.x) local[i] = 0;
    __syncthreads();
    const fp_i64 pixels = (fp_i64)height * width;
    const fp_u8* image = images + (fp_i64)rows[samples[blockIdx.y]] * pixels * channels;
    for (fp_i64 p = (fp_i64)blockIdx.x * blockDim.x + threadIdx.x; p < pixels; p += (fp_i64)gridDim.x * blockDim.x) {
        const fp_u8* px = image + p * channels;
        if (channels == 3) {
            atomicAdd(&local[px[0]], 1u);
            atomicAdd(&local[256 + px[1]], 1u);
            atomicAdd(&local[512 + px[2]], 1u);
            atomicAdd(&local[768 + fp_luminance(px[0], px[1], px[2])], 1u);
        } else {
            atomicAdd(&local[px[0]], 1u);
        }
    }
    __syncthreads();
    fp_u32* out = hist + (fp_i64)blockIdx.y * FP_HIST_STRIDE;
    for (int i = threadIdx.x; i < FP_HIST_STRIDE; i += blockDim.x)
        if (local[i]) atomicAdd(&out[i], local[i]);
}
