// The kernels' host packing, compiled (host-only: not part of the CUDA translation unit that
// policy.cu makes). fastpolicy/backends/kernel_pack.py builds it with g++ and calls it
// through ctypes; its NumPy packer writes the very same bytes and is the fallback where no
// compiler is found. Two calls per batch:
//
//   fp_pack_entries  every sample's op-table entry per slot, found through the table's dense
//                    index by (op, bin, sign) and checked against the op and the float64
//                    value's bits (a miss: Python adds the entry and packs the batch again);
//   fp_pack_fill     the slots into the caller's buffer: entries, Cutout boxes (the
//                    reference's float64 arithmetic, fastpolicy/reference/special.py),
//                    partners, the samples that build a table, one header per slot, the row
//                    tables and a copy of the op table.
//
// The buffer may come from any allocator: its int32 stores assume no alignment.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr long long kBins = 258;  // kernel_pack._BINS: bin + 1 in 0..256
constexpr int kFlagStats = 1, kFlagTable = 2, kFlagCutout = 4;  // OpTable.flags
constexpr int kHeader = 16;                                      // kernel_pack.HEADER_SIZE
constexpr double kMaxSide = 1073741824.0;                        // 2^30: every box coordinate fits int32

// int32 stores into the byte buffer: any alignment, no aliasing assumption
typedef int32_t int32u __attribute__((may_alias, aligned(1)));

}  // namespace

extern "C" {

// codes[s * n + i] (int32 [k, n]) = the entry of sample i's slot s. op int16, bin int8, sign
// int8, bits uint64 (the float64 values) are [n, k]; dense int32 [dense_size]; entry_op int16
// and entry_bits uint64 are [entries]. Returns how many samples have no entry yet (0: all found).
long long fp_pack_entries(long long n, long long k, const int16_t* op, const int8_t* bin, const int8_t* sign,
                          const uint64_t* bits, const int32_t* dense, long long dense_size, const int16_t* entry_op,
                          const uint64_t* entry_bits, long long entries, int32_t* codes) {
    long long misses = 0;
    for (long long s = 0; s < k; ++s) {
        int32_t* code = codes + s * n;
        for (long long i = 0, j = s; i < n; ++i, j += k) {
            const long long index = ((op[j] + 1LL) * kBins + bin[j] + 1) * 2 + (sign[j] > 0);
            const bool inside = (unsigned long long)index < (unsigned long long)dense_size;
            const int32_t entry = dense[inside ? index : 0];
            const bool known = inside & ((unsigned long long)entry < (unsigned long long)entries);
            const int32_t at = known ? entry : 0;
            misses += !(known & (entry_op[at] == op[j]) & (entry_bits[at] == bits[j]));
            code[i] = entry;
        }
    }
    return misses;
}

// Packs the batch into buffer. codes int32 [k, n] (fp_pack_entries); flags uint8 [entries]
// (OpTable.flags); value float64 [n, k]; center float64 [n, k, 2]; partner int32 [n, k];
// in_rows int32 [n] or null (row i); blob uint8 [blob_nbytes] (the op table). plan int64:
// per slot s at 5 s the byte offsets of its code, box, partner, lut_samples and header; at
// 5 k those of in_rows, identity and the table; at 5 k + 3 the headers [k][2][16] (variant 0
// for a slot that reads the stage input, up to the first active slot; 1 after it). out int32
// [3 k]: per slot the samples with statistics, the samples that build a table (those
// included), and whether any sample applies an op. Returns 0; or 1, having written nothing,
// where a Cutout's centre is outside [0, 1) (the reference raises) or its side is not finite
// or beyond 2^30 pixels (a float-to-integer conversion out of range, which NumPy and C++ need
// not agree on): the caller packs that batch with NumPy.
int fp_pack_fill(long long n, long long k, long long height, long long width, const int32_t* codes,
                 const uint8_t* flags, const double* value, const double* center, const int32_t* partner,
                 const int32_t* in_rows, const uint8_t* blob, long long blob_nbytes, const int64_t* plan,
                 uint8_t* buffer, int32_t* out) {
    // per slot, the samples with statistics, with a table but no statistics, with a Cutout box:
    // listed without branches (every sample writes its index, the count moves on where it
    // belongs), as the flags of a mixed batch follow no pattern a branch predictor could learn
    static thread_local std::vector<int32_t> lists, boxes;
    const long long stride = n + 1;
    lists.resize((size_t)(3 * k * stride));
    boxes.resize((size_t)(4 * k * n));
    const long long short_side = height < width ? height : width;
    long long first = -1;
    for (long long s = 0; s < k; ++s) {
        const int32_t* code = codes + s * n;
        int32_t* stats = lists.data() + 3 * s * stride;
        int32_t* tables = stats + stride;
        int32_t* cuts = tables + stride;
        long long a = 0, b = 0, c = 0;
        int32_t active = 0;
        for (long long i = 0; i < n; ++i) {
            const uint8_t flag = flags[code[i]];
            active |= code[i];
            stats[a] = tables[b] = cuts[c] = (int32_t)i;
            a += flag & kFlagStats;
            b += (flag & kFlagTable) >> 1;
            c += (flag & kFlagCutout) >> 2;
        }
        int32_t* box = boxes.data() + 4 * s * n;
        for (long long m = 0; m < c; ++m) {
            // reference/special.cutout_boxes: side = rint(value * min(H, W)), centre truncated,
            // y0 = cy - side // 2 (floor division), clipped to the image
            const long long j = cuts[m] * k + s;
            const double cy = center[2 * j], cx = center[2 * j + 1];
            const double rounded = std::rint(value[j] * (double)short_side);
            if (!(cy >= 0.0 && cy < 1.0 && cx >= 0.0 && cx < 1.0 && rounded > -kMaxSide && rounded < kMaxSide)) return 1;
            const int64_t side = (int64_t)rounded;
            const int64_t y0 = (int64_t)std::trunc(cy * (double)height) - (side >> 1);
            const int64_t x0 = (int64_t)std::trunc(cx * (double)width) - (side >> 1);
            box[4 * m] = (int32_t)(y0 > 0 ? y0 : 0);
            box[4 * m + 1] = (int32_t)(x0 > 0 ? x0 : 0);
            box[4 * m + 2] = (int32_t)(y0 + side < height ? y0 + side : height);
            box[4 * m + 3] = (int32_t)(x0 + side < width ? x0 + side : width);
        }
        out[3 * s] = (int32_t)a;
        out[3 * s + 1] = (int32_t)(a + b);
        out[3 * s + 2] = active != 0;
        cuts[n] = (int32_t)c;  // the list's last slot is free: its length
        if (active && first < 0) first = s;
    }
    if (first < 0) first = 0;

    const int64_t* batch = plan + 5 * k;
    int32u* rows = (int32u*)(buffer + batch[0]);
    int32u* identity = (int32u*)(buffer + batch[1]);
    for (long long i = 0; i < n; ++i) identity[i] = (int32_t)i;
    if (in_rows) {
        if (n) std::memcpy(rows, in_rows, (size_t)(4 * n));
    } else {
        for (long long i = 0; i < n; ++i) rows[i] = (int32_t)i;
    }
    if (blob_nbytes) std::memcpy(buffer + batch[2], blob, (size_t)blob_nbytes);

    for (long long s = 0; s < k; ++s) {
        const int64_t* at = plan + 5 * s;
        const int32_t* stats = lists.data() + 3 * s * stride;
        const int32_t* tables = stats + stride;
        const int32_t* cuts = tables + stride;
        const long long a = out[3 * s], b = out[3 * s + 1] - a, c = cuts[n];
        if (n) std::memcpy(buffer + at[0], codes + s * n, (size_t)(4 * n));
        int32u* partners = (int32u*)(buffer + at[2]);
        for (long long i = 0, j = s; i < n; ++i, j += k) partners[i] = partner[j];
        int32u* box = (int32u*)(buffer + at[1]);
        if (n) std::memset(box, 0, (size_t)(16 * n));
        const int32_t* cut_boxes = boxes.data() + 4 * s * n;
        for (long long m = 0; m < c; ++m) std::memcpy(box + 4 * cuts[m], cut_boxes + 4 * m, 16);
        // the samples that build a table: those with statistics, then those without
        if (a) std::memcpy(buffer + at[3], stats, (size_t)(4 * a));
        if (b) std::memcpy(buffer + at[3] + 4 * a, tables, (size_t)(4 * b));
        std::memcpy(buffer + at[4], batch + 3 + (2 * s + (s <= first ? 0 : 1)) * kHeader, 8 * kHeader);
    }
    return 0;
}

}  // extern "C"
