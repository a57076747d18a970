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
    int ivalue;          // the op's integer parameter (Solarize: ceil(threshold); Posterize: bits;
                         // a registered table op: its row of host_luts)
    const fp_u8* host_luts;  // uint8 [U, 256]: the host-built tables of registered table ops
};

// What the builders read of a channel's statistics: sums, a minimum and a maximum (integers,
// so the same whatever order a block adds them in), then the derived values (fp_lut_finish).
struct FpLutStats {
    unsigned long long count, total;  // the grey image: pixels, and the sum of their levels
    unsigned long long sum;           // this channel: pixels
    int lo, hi, levels;               // this channel: lowest and highest level present, levels present
    int mean;                         // Contrast: int(total / count + 0.5) in float64 (0 if empty)
    double scale, offset;             // AutoContrast: 255 / (hi - lo) and -lo * scale
    unsigned long long step;          // Equalize: (sum - pixels at level hi) / 255, 0 if one level
};

__device__ __forceinline__ void fp_lut_start(FpLutStats& s) {
    s.count = s.total = s.sum = 0;
    s.lo = 256;
    s.hi = -1;
    s.levels = 0;
}

__device__ __forceinline__ void fp_lut_finish(FpLutStats& s, const FpLutArgs& a) {
    s.mean = s.count ? (int)__dadd_rn(__ddiv_rn((double)s.total, (double)s.count), 0.5) : 0;
    s.scale = s.hi > s.lo ? __ddiv_rn(255.0, (double)(s.hi - s.lo)) : 0.0;
    s.offset = -(double)s.lo * s.scale;
    s.step = s.levels > 1 ? (s.sum - a.hist[s.hi]) / 255 : 0;
}

// Each builder gives entry i of its table from the op's arguments, the channel's statistics
// and `below`, the channel's pixels at levels below i (Equalize's cumulative count).
#define FP_LUT_ENTRY(name) \
    __device__ __forceinline__ fp_u8 name(int i, const FpLutArgs& a, const FpLutStats& s, unsigned long long below)

FP_LUT_ENTRY(lut_invert) { return (fp_u8)(255 - i); }

FP_LUT_ENTRY(lut_solarize) { return (fp_u8)(i < a.ivalue ? i : 255 - i); }

// SolarizeAdd (timm): add ivalue (whole levels, ≥ 0) below 128, clipped at 255.
FP_LUT_ENTRY(lut_solarize_add) { return (fp_u8)(i < 128 ? (i + a.ivalue > 255 ? 255 : i + a.ivalue) : i); }

FP_LUT_ENTRY(lut_posterize) { return (fp_u8)(i & ~((1 << (8 - a.ivalue)) - 1)); }

// A registered table op (fastpolicy.register_op(lut=...)): the table the host built for its value.
FP_LUT_ENTRY(lut_table) { return a.host_luts[(fp_i64)a.ivalue * 256 + i]; }

FP_LUT_ENTRY(lut_brightness) { return fp_blend(0, i, a.value); }

// Contrast: blend with the grey image's mean level.
FP_LUT_ENTRY(lut_contrast) { return fp_blend(s.mean, i, a.value); }

// AutoContrast (cutoff 0): stretch [lo, hi] to [0, 255], trunc(i * scale + offset) in float64;
// the identity where fewer than two levels are present.
FP_LUT_ENTRY(lut_autocontrast) {
    if (s.hi <= s.lo) return (fp_u8)i;
    return (fp_u8)fp_clip8((int)__dadd_rn(__dmul_rn((double)i, s.scale), s.offset));
}

// Equalize: PIL's integer cumulative table, (step / 2 + below) / step; the identity if step is 0.
FP_LUT_ENTRY(lut_equalize) {
    if (s.step == 0) return (fp_u8)i;
    const unsigned long long level = (s.step / 2 + below) / s.step;
    return (fp_u8)(level > 255 ? 255 : level);
}

// Entry i of builder `kind`'s table (FP_LUTS; anything else: the identity).
__device__ __forceinline__ fp_u8 fp_lut_entry(int kind, int i, const FpLutArgs& a, const FpLutStats& s,
                                              unsigned long long below) {
    switch (kind) {
#define FP_LUT_CASE(code, builder) case code: return builder(i, a, s, below);
        FP_LUTS(FP_LUT_CASE)
#undef FP_LUT_CASE
        default: return (fp_u8)i;
    }
}

// Builder `kind` into one uint8[256] table, by one thread: the statistics, then the entries
// in order. Called, not inlined (fp_build_luts and the native build).
FP_NOINLINE __device__ void fp_build_table(int kind, fp_u8* table, FpLutArgs a) {
    FpLutStats s;
    fp_lut_start(s);
    if (a.hist)
        for (int i = 0; i < 256; ++i) {
            const fp_u32 h = a.hist[i], g = a.grey[i];
            if (h) {
                s.lo = s.lo < i ? s.lo : i;
                s.hi = i;
                ++s.levels;
                s.sum += h;
            }
            s.count += g;
            s.total += (unsigned long long)g * i;
        }
    fp_lut_finish(s, a);
    unsigned long long below = 0;
    for (int i = 0; i < 256; ++i) {
        table[i] = fp_lut_entry(kind, i, a, s, below);
        below += a.hist ? a.hist[i] : 0;
    }
}

// Builder `kind`'s C tables of one sample by the whole block (fp_policy), without atomics:
// each channel's lowest and highest level present, the levels present, the grey image's sum
// of levels (tree reductions over the 256 bins) and the cumulative counts below each level (a
// Hillis-Steele scan), in the same 8 barrier-separated steps; then one entry per thread.
// `hist`: the sample's histograms (hist + 256 c; the L histogram at 768 for C = 3), null for
// an op without statistics. Every thread of the block calls it (any blockDim); it ends with a
// barrier. work: uint32 [4353] of shared memory (below); stats: FpLutStats [3] of shared
// memory. Called, not inlined: one copy for both slots.
FP_NOINLINE __device__ void fp_block_build(int kind, fp_u8* table, const fp_u32* hist, int channels, float value,
                                           int ivalue, const fp_u8* host_luts, fp_u32* work, FpLutStats* stats) {
    const int bins = channels * 256;
    FpLutArgs a;
    a.grey = hist ? hist + (channels == 3 ? 768 : 0) : nullptr;
    a.value = value;
    a.ivalue = ivalue;
    a.host_luts = host_luts;
    fp_u32* below = work;  // [2][768]: the scan's two buffers (C x 256 each)
    if (hist) {
        int* lo = (int*)work + 2 * 768;                     // [768] each: per channel and bin
        int* hi = lo + 768;
        int* levels = hi + 768;
        unsigned long long* total =  // [256]: the grey sums, 8-byte aligned (one uint32 of slack)
            (unsigned long long*)(((unsigned long long)(levels + 768) + 7) & ~7ull);
        for (int k = threadIdx.x; k < bins; k += blockDim.x) {
            const int i = k % 256;
            const bool present = hist[k] != 0;
            below[k] = i ? hist[k - 1] : 0u;  // exclusive: the scan of the previous bins
            lo[k] = present ? i : 256;
            hi[k] = present ? i : -1;
            levels[k] = present;
            if (k < 256) total[k] = (unsigned long long)a.grey[k] * k;
        }
        fp_u32* from = below;
        fp_u32* to = below + 768;
        for (int offset = 1, half = 128; offset < 256; offset *= 2, half /= 2) {
            __syncthreads();
            for (int k = threadIdx.x; k < bins; k += blockDim.x) {
                const int i = k % 256;
                to[k] = from[k] + (i >= offset ? from[k - offset] : 0u);
                if (i < half) {  // bins [0, half) take in [half, 2 half): their values, not yet changed this step
                    lo[k] = lo[k] < lo[k + half] ? lo[k] : lo[k + half];
                    hi[k] = hi[k] > hi[k + half] ? hi[k] : hi[k + half];
                    levels[k] += levels[k + half];
                    if (k < half) total[k] += total[k + half];
                }
            }
            fp_u32* done = to;
            to = from;
            from = done;
        }
        below = from;
        __syncthreads();
        for (int c = threadIdx.x; c < channels; c += blockDim.x) {
            FpLutStats& s = stats[c];
            a.hist = hist + 256 * c;
            s.sum = (unsigned long long)below[256 * c + 255] + a.hist[255];  // every pixel, once
            s.count = s.sum;  // the L histogram also counts every pixel once
            s.total = total[0];
            s.lo = lo[256 * c];
            s.hi = hi[256 * c];
            s.levels = levels[256 * c];
            fp_lut_finish(s, a);
        }
    } else {
        for (int c = threadIdx.x; c < channels; c += blockDim.x) {  // the builders without statistics
            fp_lut_start(stats[c]);
            a.hist = nullptr;
            fp_lut_finish(stats[c], a);
        }
    }
    __syncthreads();
    for (int k = threadIdx.x; k < bins; k += blockDim.x) {
        const int c = k / 256;
        a.hist = hist ? hist + 256 * c : nullptr;
        table[k] = fp_lut_entry(kind, k % 256, a, stats[c], hist ? below[k] : 0u);
    }
    __syncthreads();
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
    args.host_luts = fp_field<fp_u8>(packed, header, FP_HOST_LUTS);
    fp_u8* table = luts + ((fp_i64)n * channels + c) * 256;
    fp_build_table(fp_field<int>(packed, header, FP_E_LUT)[e], table, args);
}
