// Pixel plumbing on PIL images' own memory (host-only). fastpolicy/backends/pil_pixels.py
// builds it with g++ and calls it through ctypes on the memory Pillow exports (its Arrow
// interface): an "L" image is one byte per pixel, an "RGB" image four (R, G, B and a padding
// byte). Nothing here defines an op: the tables come from the NumPy reference
// (fastpolicy/reference/color.py); these loops only count levels, map them through a table, and
// copy pixels between layouts.
#include <cstdint>
#include <cstring>

#include "pil_levels.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pixels are packed as little-endian 32-bit words");

extern "C" {

// hist int64 [bands][256] (overwritten): the levels of the first `bands` bytes of each of the
// `pixels` pixels of `pixel_bytes` bytes at `px`.
void fp_pixels_histogram(const uint8_t* px, int64_t pixels, int pixel_bytes, int bands, int64_t* hist) {
    fp_count_levels(px, pixels, pixel_bytes, bands, hist);
}

// 1 where fp_pixels_lut's vector loop runs on this CPU (AVX-512 VBMI), else 0.
int fp_pixels_lut_vectorized(void) { return fp_lookup_vectorized(); }

// dst = src with byte c < bands of every pixel mapped through table[c * 256 + level]; the bytes
// past `bands` (RGB's padding) copied as they are. src and dst do not overlap. `vector` 0 keeps
// to the scalar loop (the tests compare both).
void fp_pixels_lut(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, int64_t pixels, int pixel_bytes,
                   int bands, const uint8_t* table, int vector) {
    fp_lookup(src, dst, pixels, pixel_bytes, bands, table, vector);
}

// Copy `bands` channels of `pixels` pixels between layouts, strides in bytes (a pixel's, a
// channel's): CHW planes (pixel 1, channel H·W), HWC (pixel C, channel 1), PIL's RGB (pixel 4,
// channel 1). `pad` >= 0: also write that level into byte `bands` of every destination pixel
// (PIL's RGB padding byte, 255 as Pillow's own unpackers write it).
void fp_pixels_copy(const uint8_t* src, int64_t src_pixel, int64_t src_channel, uint8_t* dst, int64_t dst_pixel,
                    int64_t dst_channel, int64_t pixels, int bands, int pad) {
    if (bands == 3 && dst_pixel == 4 && dst_channel == 1 && pad >= 0) {  // into PIL's RGB: a word per pixel
        const uint32_t top = (uint32_t)pad << 24;
        const uint8_t *r = src, *g = src + src_channel, *b = src + 2 * src_channel;
        for (int64_t p = 0; p < pixels; ++p) {
            const int64_t at = p * src_pixel;
            const uint32_t out = r[at] | (uint32_t)g[at] << 8 | (uint32_t)b[at] << 16 | top;
            std::memcpy(dst + 4 * p, &out, 4);
        }
        return;
    }
    if (bands == 3 && src_pixel == 4 && src_channel == 1) {  // out of PIL's RGB
        uint8_t *r = dst, *g = dst + dst_channel, *b = dst + 2 * dst_channel;
        for (int64_t p = 0; p < pixels; ++p) {
            uint32_t v;
            std::memcpy(&v, src + 4 * p, 4);
            const int64_t at = p * dst_pixel;
            r[at] = (uint8_t)v;
            g[at] = (uint8_t)(v >> 8);
            b[at] = (uint8_t)(v >> 16);
        }
        return;
    }
    for (int c = 0; c < bands; ++c) {
        const uint8_t* s = src + c * src_channel;
        uint8_t* d = dst + c * dst_channel;
        for (int64_t p = 0; p < pixels; ++p) d[p * dst_pixel] = s[p * src_pixel];
    }
    if (pad >= 0)
        for (int64_t p = 0; p < pixels; ++p) dst[p * dst_pixel + bands * dst_channel] = (uint8_t)pad;
}

}  // extern "C"
