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
//
// fp_sample_tables_seeded does the same without a Generator object: it seeds numpy's PCG64
// from the entropy words exactly as numpy.random.default_rng(entropy) does (SeedSequence's
// hash mixing, generate_state(4, uint64), PCG64's set_seed) and hands back the state after
// its draws, so the caller makes a Generator only if it draws more (the loader's batches are
// seeded afresh by (seed, shard, epoch, step) every step).
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

// numpy.random.SeedSequence (bit_generator.pyx): a pool of 4 words hashed from the entropy.
constexpr uint32_t kInitA = 0x43b0d7e5u, kMultA = 0x931e8875u, kInitB = 0x8b51f9ddu, kMultB = 0x58f38dedu;
constexpr uint32_t kMixMultL = 0xca01f9ddu, kMixMultR = 0x4973f715u;
constexpr int kPool = 4, kShift = 16;

inline uint32_t hashmix(uint32_t value, uint32_t& hash_const) {
    value ^= hash_const;
    hash_const *= kMultA;
    value *= hash_const;
    value ^= value >> kShift;
    return value;
}

inline uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t result = kMixMultL * x - kMixMultR * y;
    result ^= result >> kShift;
    return result;
}

// SeedSequence(entropy).generate_state(4, np.uint64): `words` is the entropy as numpy coerces
// it (each integer's 32-bit words, least significant first; 0 is one word).
void seed_state(const uint32_t* words, long long n_words, uint64_t out[4]) {
    uint32_t pool[kPool];
    uint32_t hash_const = kInitA;
    for (int i = 0; i < kPool; ++i) pool[i] = hashmix(i < n_words ? words[i] : 0u, hash_const);
    for (int src = 0; src < kPool; ++src)
        for (int dst = 0; dst < kPool; ++dst)
            if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], hash_const));
    for (long long src = kPool; src < n_words; ++src)
        for (int dst = 0; dst < kPool; ++dst) pool[dst] = mix(pool[dst], hashmix(words[src], hash_const));
    uint32_t state[8];
    hash_const = kInitB;
    for (int i = 0; i < 8; ++i) {
        uint32_t value = pool[i % kPool];
        value ^= hash_const;
        hash_const *= kMultB;
        value *= hash_const;
        value ^= value >> kShift;
        state[i] = value;
    }
    for (int i = 0; i < 4; ++i) out[i] = (uint64_t)state[2 * i] | (uint64_t)state[2 * i + 1] << 32;
}

// numpy's PCG64 (pcg64.h: the 128-bit LCG with the XSL-RR output; next_uint32 halves a 64-bit
// draw, the high half kept for the next call; next_double 53 bits).
struct Pcg64 {
    __uint128_t state, inc;
    int has_uint32;
    uint32_t uinteger;
};

constexpr __uint128_t kPcgMultiplier = (__uint128_t)2549297995355413924ULL << 64 | 4865540595714422341ULL;

inline void pcg_step(Pcg64* p) { p->state = p->state * kPcgMultiplier + p->inc; }

inline uint64_t pcg_next64(void* st) {
    Pcg64* p = static_cast<Pcg64*>(st);
    pcg_step(p);
    const uint64_t value = (uint64_t)(p->state >> 64) ^ (uint64_t)p->state;
    const unsigned rot = (unsigned)(p->state >> 122);
    return (value >> rot) | (value << ((-rot) & 63u));
}

uint32_t pcg_next32(void* st) {
    Pcg64* p = static_cast<Pcg64*>(st);
    if (p->has_uint32) {
        p->has_uint32 = 0;
        return p->uinteger;
    }
    const uint64_t next = pcg_next64(st);
    p->has_uint32 = 1;
    p->uinteger = (uint32_t)(next >> 32);
    return (uint32_t)(next & 0xffffffffu);
}

double pcg_next_double(void* st) { return (double)(pcg_next64(st) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t pcg_raw(void* st) { return pcg_next64(st); }

// PCG64(SeedSequence(entropy)): pcg64_set_seed with the seed and increment of seed_state.
void pcg_seed(Pcg64* p, const uint32_t* words, long long n_words) {
    uint64_t seeded[4];
    seed_state(words, n_words, seeded);
    const __uint128_t initstate = (__uint128_t)seeded[0] << 64 | seeded[1];
    const __uint128_t initseq = (__uint128_t)seeded[2] << 64 | seeded[3];
    p->state = 0;
    p->inc = initseq << 1 | 1;
    pcg_step(p);
    p->state += initstate;
    pcg_step(p);
    p->has_uint32 = 0;
    p->uinteger = 0;
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

// fp_sample_tables_packed from a PCG64 seeded here as numpy.random.default_rng(entropy) seeds it
// (`words`: the entropy's 32-bit words, see seed_state). `state_out` gets the generator's state
// after the draws: state and increment as (high, low) 64-bit halves, has_uint32, uinteger.
int fp_sample_tables_seeded(const uint32_t* words, long long n_words, uint64_t* state_out, const int64_t* a) {
    Pcg64 pcg;
    pcg_seed(&pcg, words, n_words);
    bitgen_t g{&pcg, pcg_next64, pcg_next32, pcg_next_double, pcg_raw};
    const int failed = fp_sample_tables_packed(&g, a);
    state_out[0] = (uint64_t)(pcg.state >> 64);
    state_out[1] = (uint64_t)pcg.state;
    state_out[2] = (uint64_t)(pcg.inc >> 64);
    state_out[3] = (uint64_t)pcg.inc;
    state_out[4] = (uint64_t)pcg.has_uint32;
    state_out[5] = pcg.uinteger;
    return failed;
}

}  // extern "C"
