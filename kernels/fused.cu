// Both op slots of a batch in one launch: one block per sample, composed pixel by pixel.
//
// The second slot reads its input through FpFirst: the first slot's output pixel computed
// where it is needed, never stored. So two warps are a double gather (the second op's
// source coordinates, then the first op's), a table after a table is lut2[lut1[v]], a table
// after a warp also maps the warp's fill (and a warp after a table does not), and Sharpness
// after a warp evaluates the warp at its 9 neighbours — each the reference's own order of
// operations, so the result is the same bits as two passes.
//
// Statistics stay inside the block: per-warp sub-histograms in shared memory (no global
// atomics), summed in a fixed order, and the slot's tables built by the whole block with the
// luts.cu formulas (fp_block_build: integer reductions and a scan, exact in any order). A
// second slot's statistics are taken on the first slot's output, recomputed pixel by pixel.
#pragma once
#include "apply.cu"
#include "luts.cu"
#include "stats.cu"

#define FP_FUSED_WARPS 8  // most warps per block of fp_policy (256 threads)

// Sample n's pixel (y, x) of the first slot's output (op `code`), its C values packed (value
// c in bits 8c .. 8c + 7). Called, not inlined: the kernel holds one copy of the first op's
// dispatch (every apply function) however many places read the first slot's output —
// inlined at each, NVRTC and ptxas took minutes.
FP_NOINLINE __device__ fp_u32 fp_first_pixel(const FpSlot* first, int code, int n, int y, int x) {
    fp_u8 v[3] = {0, 0, 0};
    fp_dispatch(*first, FpMemory(), code, n, y, x, v);
    return fp_pack3(v);
}

// The first slot's output as the second slot's input.
struct FpFirst {
    const FpSlot* first;
    int code;
    __device__ __forceinline__ void get(const FpSlot& s, int n, int y, int x, fp_u8* out) const {
        fp_unpack3(fp_first_pixel(first, code, n, y, x), out);
    }
    __device__ __forceinline__ void run(const FpSlot& s, int n, int y, int x0, int k, fp_u32* w) const {
        w[0] = w[1] = w[2] = 0u;
#pragma unroll 1
        for (int j = 0; j < FP_RUN; ++j) fp_run_append(w, s.channels, j < k ? fp_first_pixel(first, code, n, y, x0 + j) : 0u);
        fp_run_finish(w, s.channels);
    }
};

// Sample n's pixel (y, x) of the first slot's output where the first op (`code`) reads only
// its own pixel, whose input value is `v` (C values packed): the run's value loaded with
// words. Called, as fp_first_pixel.
FP_NOINLINE __device__ fp_u32 fp_first_value(const FpSlot* first, int code, int n, int y, int x, fp_u32 v) {
    fp_u8 in[3], out[3] = {0, 0, 0};
    fp_unpack3(v, in);
    fp_dispatch_point(*first, code, n, y, x, in, out);
    return fp_pack3(out);
}

// Sample n's output pixel (y, x) of the second slot (op code2) over the first: a gather
// evaluates the first op where it reads (FpFirst); any other op reads the first op's pixel
// (y, x), `first_value`. A lone first slot is the second slot's apply_copy (code 0) over it.
// So the first op's dispatch is called from few places and every second op has one copy.
__device__ __forceinline__ void fp_second(const FpSlot& two, const FpFirst& first, bool gathers, int code2, int n,
                                          int y, int x, fp_u32 first_value, fp_u8* out) {
    if (gathers) {
        fp_dispatch_gather(two, first, code2, n, y, x, out);
        return;
    }
    fp_u8 v[3];
    fp_unpack3(first_value, v);
    fp_dispatch_point(two, code2, n, y, x, v, out);
}

// Sample n's slot input (`In`, read in runs) into the block's per-warp sub-histograms, summed
// into `hist` in a fixed order.
template <class In>
__device__ void fp_block_histogram(const FpSlot& s, const In& in, int n, fp_u32 (*sub)[FP_HIST_STRIDE],
                                   fp_u32* hist) {
    const int warp = (int)(threadIdx.x / 32);
    for (int i = threadIdx.x; i < FP_FUSED_WARPS * FP_HIST_STRIDE; i += blockDim.x) sub[i / FP_HIST_STRIDE][i % FP_HIST_STRIDE] = 0;
    __syncthreads();
    fp_u32* mine = sub[warp];
    FpRuns at(s.height, s.width, threadIdx.x, blockDim.x);
    for (fp_i64 q = threadIdx.x; q < at.runs; q += blockDim.x, at.next()) {
        const int x0 = at.x0(), k = at.length(s.width);
        fp_u32 w[3];
        in.run(s, n, at.y, x0, k, w);
#pragma unroll 1
        for (int j = 0; j < k; ++j) fp_count(mine, fp_run_take(w, s.channels), s.channels);
    }
    __syncthreads();
    const int warps = (int)((blockDim.x + 31) / 32);
    for (int i = threadIdx.x; i < FP_HIST_STRIDE; i += blockDim.x) {
        fp_u32 total = 0;
        for (int w = 0; w < warps; ++w) total += sub[w][i];
        hist[i] = total;
    }
    __syncthreads();
}

// Slot s's tables of sample n (lut ops) into `table` (shared, C x 256), statistics of its input first.
template <class In>
__device__ void fp_block_tables(const FpSlot& s, const In& in, const fp_u8* packed, const fp_i64* header, int n,
                                fp_u8* table, fp_u32 (*sub)[FP_HIST_STRIDE], fp_u32* hist, FpLutStats* lut_stats) {
    const int e = s.entry[n];
    const int kind = fp_field<int>(packed, header, FP_E_LUT)[e];
    if (kind < 0) return;
    const bool stats = fp_field<int>(packed, header, FP_E_STATS)[e] != 0;
    if (stats) fp_block_histogram(s, in, n, sub, hist);
    // the sub-histograms are summed into hist: their memory is the builder's work space
    fp_block_build(kind, table, stats ? hist : nullptr, s.channels, fp_value(s, n),
                   fp_field<int>(packed, header, FP_E_IVALUE)[e], fp_field<fp_u8>(packed, header, FP_HOST_LUTS),
                   &sub[0][0], lut_stats);
}

// One block per sample (grid-stride over blockIdx.x), at most 256 threads; registers for
// 3 blocks (24 warps) per SM, which the block's 38.5 KB of shared memory allows on sm_80
// and sm_90, without spills (ptxas would otherwise take 96 and fit 2).
// packed: the batch's packed buffer; first, second: the headers of the two slots (FpField,
//      common.cuh); slots: 2, or 1 to apply the first alone (second is not read); src, orig, dst, out_mode, mean, inv_std,
//      count, height, width, channels, fill: as fp_apply (apply.cu); src is the first
//      slot's input (rows src_row of its header).
extern "C" __global__ void FP_LAUNCH_BOUNDS(256, 3) fp_policy(const fp_u8* __restrict__ packed, const fp_i64* __restrict__ first,
                                     const fp_i64* __restrict__ second, int slots, const fp_u8* __restrict__ src,
                                     const fp_u8* __restrict__ orig, void* dst, int out_mode,
                                     const float* __restrict__ mean, const float* __restrict__ inv_std, int count,
                                     int height, int width, int channels, int fill) {
    __shared__ fp_u32 sub[FP_FUSED_WARPS][FP_HIST_STRIDE];
    __shared__ fp_u32 hist[FP_HIST_STRIDE];
    __shared__ fp_u8 tables[2][3 * 256];
    __shared__ FpLutStats lut_stats[3];
    // The first slot's fields, read by fp_first_pixel through a pointer: in shared memory,
    // one copy per block (in each thread's registers they would go to its stack).
    __shared__ FpSlot one;
    if (threadIdx.x == 0) {
        one = fp_slot(packed, first, src, orig, tables[0], height, width, channels, fill);
        one.lut_stride = 0;
    }
    __syncthreads();
    const bool paired = slots == 2;  // else the second slot is apply_copy (code 0): none of its fields is read
    FpSlot two = fp_slot(packed, paired ? second : first, src, orig, tables[1], height, width, channels, fill);
    two.lut_stride = 0;
    const fp_i64 pixels = (fp_i64)height * width;
    for (int n = blockIdx.x; n < count; n += gridDim.x) {
        const int code1 = fp_field<int>(packed, first, FP_E_CODE)[one.entry[n]];
        fp_block_tables(one, FpMemory(), packed, first, n, tables[0], sub, hist, lut_stats);
        FpFirst composed;
        composed.first = &one;
        composed.code = code1;
        int code2 = 0;
        bool gathers = false;
        if (paired) {
            code2 = fp_field<int>(packed, second, FP_E_CODE)[two.entry[n]];
            fp_block_tables(two, composed, packed, second, n, tables[1], sub, hist, lut_stats);
            gathers = fp_gathers(code2);
        }
        // Runs of FP_RUN pixels (runs.cuh); the run's input is loaded with words where both ops
        // read only their own pixel.
        const bool gathers1 = fp_gathers(code1), loads = !gathers && !gathers1;
        FpRuns at(height, width, threadIdx.x, blockDim.x);
        for (fp_i64 q = threadIdx.x; q < at.runs; q += blockDim.x, at.next()) {
            const int x0 = at.x0(), k = at.length(width);
            fp_u32 in[3] = {0u, 0u, 0u}, out[3] = {0u, 0u, 0u};
            if (loads) fp_run_load(fp_src(one, n, at.y, x0), k, channels, in);
#pragma unroll 1
            for (int j = 0; j < FP_RUN; ++j) {
                fp_u8 px[3] = {0, 0, 0};
                if (j < k) {
                    fp_u32 value = 0;
                    if (loads) value = fp_first_value(&one, code1, n, at.y, x0 + j, fp_run_take(in, channels));
                    else if (!gathers) value = fp_first_pixel(&one, code1, n, at.y, x0 + j);
                    fp_second(two, composed, gathers, code2, n, at.y, x0 + j, value, px);
                }
                fp_run_append(out, channels, fp_pack3(px));
            }
            fp_run_finish(out, channels);
            fp_run_store(dst, out_mode, mean, inv_std, n, (fp_i64)at.y * width + x0, pixels, channels, k, out);
        }
        __syncthreads();  // the tables of the next sample overwrite these
    }
}
