// The loader's sampler of sub-policy tables, compiled (host-only). fastpolicy/sample_native.py
// builds it with g++ and calls it through ctypes; fastpolicy/sampling.py's NumPy code is the
// specification and the fallback where no compiler is found.
//
// It draws from the caller's numpy Generator itself — through the Generator's bitgen_t (its
// own next_uint32 / next_double), with numpy's algorithms (Generator.integers: Lemire's
// bounded draw on 32-bit words; Generator.random: next_double) and in the NumPy code's order
// (sub-policies, kept slots, signs, Cutout centres, partners, each for the whole batch) — so
// the parameters and the Generator's state afterwards are those of the NumPy path, draw for
// draw (tests/test_sample_native.py).
#include <cstdint>

extern "C" {

// numpy/random/bitgen.h
struct bitgen_t {
    void* state;
    uint64_t (*next_uint64)(void* st);
    uint32_t (*next_uint32)(void* st);
    double (*next_double)(void* st);
    uint64_t (*next_raw)(void* st);
};

}  // extern "C"

namespace {

// Generator.integers(low, low + rng + 1) for one value, rng < 2^32: numpy's
// random_bounded_uint64_fill without masking (buffered_bounded_lemire_uint32); rng == 0 draws
// nothing.
inline int64_t bounded(bitgen_t* g, uint32_t rng) {
    if (rng == 0) return 0;
    if (rng == 0xFFFFFFFFu) return g->next_uint32(g->state);
    const uint32_t excl = rng + 1;
    uint64_t m = (uint64_t)g->next_uint32(g->state) * excl;
    uint32_t leftover = (uint32_t)(m & 0xFFFFFFFFu);
    if (leftover < excl) {
        const uint32_t threshold = (UINT32_MAX - rng) % excl;
        while (leftover < threshold) {
            m = (uint64_t)g->next_uint32(g->state) * excl;
            leftover = (uint32_t)(m & 0xFFFFFFFFu);
        }
    }
    return (int64_t)(m >> 32);
}

}  // namespace

extern "C" {

// G tables of S sub-policies of K slots (int64 op and bin, float64 prob, each [G, S, K]), n
// images each, k >= K slots out (the rest skipped): rows g * n + i, as sampling.sample_policies
// then sampling.complete (partners within blocks of n rows).
// Space tables: values float64 [ops, bins, 2] (sign -1, +1), is_signed and has_magnitude uint8
// [ops]. Out: op int16, bin int8, sign int8, value float64 [G n, k]; center float64 [G n, k, 2];
// partner int32 [G n, k]; work: int64 [G n] (the chosen sub-policies). Returns 0, or 1 where an
// op id or a bin lies outside the space tables or a bin outside int8 (nothing is then trusted;
// the caller raises). S, K >= 1 and k >= K (the caller checks).
int fp_sample_tables(bitgen_t* g, long long G, long long S, long long K, long long n, long long k, const int64_t* t_op,
                     const int64_t* t_bin, const double* t_prob, long long ops, long long bins, const double* values,
                     const uint8_t* is_signed, const uint8_t* has_magnitude, int16_t* op, int8_t* bin, int8_t* sign,
                     double* value, double* center, int32_t* partner, int64_t* chosen) {
    const long long rows = G * n;
    // choose_stacked: the sub-policy of every (g, i), then whether each of its K slots is kept
    for (long long r = 0; r < rows; ++r) chosen[r] = bounded(g, (uint32_t)(S - 1));
    int bad = 0;
    for (long long r = 0; r < rows; ++r) {
        const long long base = ((r / n) * S + chosen[r]) * K;
        for (long long s = 0; s < k; ++s) {
            if (s < K) {
                const bool keep = g->next_double(g->state) < t_prob[base + s];
                const int64_t id = t_op[base + s];
                op[r * k + s] = (int16_t)(keep ? id : -1);
                if (keep && (id < -1 || id >= ops)) bad = 1;
            } else {
                op[r * k + s] = -1;
            }
        }
    }
    if (bad) return 1;
    // complete: a sign drawn for every slot (kept where the op is signed), then values
    for (long long j = 0; j < rows * k; ++j) sign[j] = bounded(g, 1) ? 1 : -1;
    for (long long j = 0; j < rows * k; ++j) {
        const long long r = j / k, s = j % k;
        const int16_t id = op[j];
        const bool active = id != -1;
        const long long safe = active ? id : 0;
        const bool magnitude = active && has_magnitude[safe];
        // the table's bin, as int64 (bins past int8 are refused, never wrapped)
        const int64_t b = magnitude ? t_bin[((r / n) * S + chosen[r]) * K + s] : 0;
        if (magnitude && (b < 0 || b >= bins || b > 127)) return 1;
        if (!(is_signed[safe] && active)) sign[j] = 1;
        value[j] = magnitude ? values[(safe * bins + b) * 2 + (sign[j] + 1) / 2] : 0.0;
        bin[j] = (int8_t)(magnitude ? b : -1);
    }
    for (long long j = 0; j < rows * k * 2; ++j) center[j] = g->next_double(g->state);
    const uint32_t span = (uint32_t)((n > 2 ? n : 2) - 2);  // integers(1, max(n, 2))
    for (long long r = 0; r < rows; ++r) {
        const long long local = r % n;
        for (long long s = 0; s < k; ++s) partner[r * k + s] = (int32_t)((r - local) + (local + 1 + bounded(g, span)) % n);
    }
    return 0;
}

// fp_sample_tables with its arguments after the Generator in one int64 array (pointers as
// integers), in the order of the signature: one ctypes argument to convert instead of 20.
int fp_sample_tables_packed(bitgen_t* g, const int64_t* a) {
    return fp_sample_tables(g, a[0], a[1], a[2], a[3], a[4], (const int64_t*)a[5], (const int64_t*)a[6],
                            (const double*)a[7], a[8], a[9], (const double*)a[10], (const uint8_t*)a[11],
                            (const uint8_t*)a[12], (int16_t*)a[13], (int8_t*)a[14], (int8_t*)a[15], (double*)a[16],
                            (double*)a[17], (int32_t*)a[18], (int64_t*)a[19]);
}

}  // extern "C"
