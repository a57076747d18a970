// Lookup tables of the `lut` ops: one uint8[256] table per sample and channel, built from
// the op's value and (for AutoContrast, Equalize, Contrast) the slot input's histogram.
// Each builder is the reference's `<op>_lut` (fastpolicy/reference/color.py) in integer
// and explicitly rounded float arithmetic. The registry picks the builder per op
// (fastpolicy/backends/kernel_ops.py); FP_LUTS lists them, generated from it.
#pragma once
#include "common.cuh"

struct FpLutArgs {
    const fp_u32* hist;  // 256 bins of this channel (null for ops without statistics)
    const fp_u32* grey;  // 256 bins of the grey (L) image
    float value;         // the op's value, float32
    int ivalue;          // the op's integer parameter (Solarize: ceil(threshold); Posterize: bits)
};

__device__ void lut_identity(fp_u8* table) { for (int i = 0; i < 256; ++i) table[i] = (fp_u8)i; }

__device__ void lut_invert(fp_u8* table, const FpLutArgs& a) {
    for (int i = 0; i < 256; ++i) table[i] = (fp_u8)(255 - i);
}

__device__ void lut_solarize(fp_u8* table, const FpLutArgs& a) {
    for (int i = 0; i < 256; ++i) table[i] = (fp_u8)(i < a.ivalue ? i : 255 - i);
}

__device__ void lut_posterize(fp_u8* table, const FpLutArgs& a) {
    const int mask = ~((1 << (8 - a.ivalue)) - 1);
    for (int i = 0; i < 256; ++i) table[i] = (fp_u8)(i & mask);
}

__device__ void lut_brightness(fp_u8* table, const FpLutArgs& a) {
    for (int i = 0; i < 256; ++i) table[i] = fp_blend(0, i, a.value);
}

// Contrast: blend with the grey image's mean level, int(sum / count + 0.5) in float64.
__device__ void lut_contrast(fp_u8* table, const FpLutArgs& a) {
    unsigned long long count = 0, total = 0;
    for (int i = 0; i < 256; ++i) { count += a.grey[i]; total += (unsigned long long)a.grey[i] * i; }
    const int mean = count ? (int)__dadd_rn(__ddiv_rn((double)total, (double)count), 0.5) : 0;
    for (int i = 0; i < 256; ++i) table[i] = fp_blend(mean, i, a.value);
}

// AutoContrast (cutoff 0): stretch [lo, hi] to [0, 255]; trunc(i * scale + offset) in float64.
__device__ void lut_autocontrast(fp_u8* table, const FpLutArgs& a) {
    int lo = 0, hi = 255;
    while (lo < 256 && a.hist[lo] == 0) ++lo;
    while (hi >= 0 && a.hist[hi] == 0) --hi;
    if (hi <= lo) { lut_identity(table); return; }
    const double scale = __ddiv_rn(255.0, (double)(hi - lo));
    const double offset = -(double)lo * scale;
    for (int i = 0; i < 256; ++i) table[i] = (fp_u8)fp_clip8((int)__dadd_rn(__dmul_rn((double)i, scale), offset));
}

// Equalize: PIL's integer cumulative table, step = (count - count at the last level) / 255.
__device__ void lut_equalize(fp_u8* table, const FpLutArgs& a) {
    unsigned long long total = 0;
    int levels = 0, last = 0;
    for (int i = 0; i < 256; ++i)
        if (a.hist[i]) { total += a.hist[i]; ++levels; last = i; }
    const unsigned long long step = levels > 1 ? (total - a.hist[last]) / 255 : 0;
    if (step == 0) { lut_identity(table); return; }
    unsigned long long running = step / 2;
    for (int i = 0; i < 256; ++i) {
        const unsigned long long level = running / step;
        table[i] = (fp_u8)(level > 255 ? 255 : level);
        running += a.hist[i];
    }
}

// Builder `kind` (FP_LUTS; anything else: the identity) into one uint8[256] table. Called,
// not inlined: fp_build_luts and both slots of fp_policy share one copy of the builders.
FP_NOINLINE __device__ void fp_build_table(int kind, fp_u8* table, FpLutArgs args) {
    switch (kind) {
#define FP_LUT_CASE(code, builder) case code: builder(table, args); break;
        FP_LUTS(FP_LUT_CASE)
#undef FP_LUT_CASE
        default: lut_identity(table);
    }
}

// One thread per (listed sample, channel).
// packed, header: the batch's packed buffer and the slot's header (FpField, apply.cu): the
// listed samples (lut_samples; the first `stats` of them have histogram rows 0..stats-1) and
// each one's entry in the op table (builder, value, integer parameter).
// hist: uint32 [stats, 1024] (fp_histograms); luts: uint8 [N, C, 256], rows of the listed
// samples written.
extern "C" __global__ void fp_build_luts(const fp_u8* __restrict__ packed, const fp_i64* __restrict__ header,
                                         int count, int stats, int channels, const fp_u32* __restrict__ hist,
                                         fp_u8* __restrict__ luts) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= count * channels) return;
    const int i = t / channels, c = t % channels;
    const int n = fp_field<int>(packed, header, FP_LUT_SAMPLES)[i];
    const int e = fp_field<int>(packed, header, FP_CODE)[n];
    const fp_u32* h = i < stats ? hist + (fp_i64)i * FP_HIST_STRIDE : nullptr;
    FpLutArgs args;
    args.hist = h ? h + 256 * c : nullptr;
    args.grey = h ? h + (channels == 3 ? 768 : 0) : nullptr;
    args.value = fp_field<float>(packed, header, FP_E_VALUE)[e];
    args.ivalue = fp_field<int>(packed, header, FP_E_IVALUE)[e];
    fp_u8* table = luts + ((fp_i64)n * channels + c) * 256;
    fp_build_table(fp_field<int>(packed, header, FP_E_LUT)[e], table, args);
}
