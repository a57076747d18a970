// Pixel plumbing on PIL images' own memory (host-only). fastpolicy/backends/pil_pixels.py
// builds it with g++ and calls it through ctypes on the memory Pillow exports (its Arrow
// interface): an "L" image is one byte per pixel, an "RGB" image four (R, G, B and a padding
// byte). Nothing here defines an op: the tables come from the NumPy reference
// (fastpolicy/reference/color.py); these loops only count levels, map them through a table, and
// copy pixels between layouts.
#include <cstdint>
#include <cstring>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pixels are packed as little-endian 32-bit words");

extern "C" {

// hist int64 [bands][256] (overwritten): the levels of the first `bands` bytes of each of the
// `pixels` pixels of `pixel_bytes` bytes at `px`.
void fp_pixels_histogram(const uint8_t* px, int64_t pixels, int pixel_bytes, int bands, int64_t* hist) {
    // four partial counts per band (pixel p into copy p % 4): neighbouring pixels often share a
    // level, and one count would serialize their increments
    uint32_t part[4][4][256];  // 16 KiB on the stack
    std::memset(part, 0, sizeof(part));
    int64_t p = 0;
    if (pixel_bytes == 4 && bands == 3) {
        for (; p + 4 <= pixels; p += 4)
            for (int q = 0; q < 4; ++q) {
                const uint8_t* v = px + (p + q) * 4;
                ++part[q][0][v[0]];
                ++part[q][1][v[1]];
                ++part[q][2][v[2]];
            }
    } else {
        for (; p + 4 <= pixels; p += 4)
            for (int q = 0; q < 4; ++q) {
                const uint8_t* v = px + (p + q) * pixel_bytes;
                for (int c = 0; c < bands; ++c) ++part[q][c][v[c]];
            }
    }
    for (; p < pixels; ++p)
        for (int c = 0; c < bands; ++c) ++part[0][c][px[p * pixel_bytes + c]];
    for (int c = 0; c < bands; ++c)
        for (int level = 0; level < 256; ++level)
            hist[c * 256 + level] = (int64_t)part[0][c][level] + part[1][c][level] + part[2][c][level] + part[3][c][level];
}

// dst = src with byte c < bands of every pixel mapped through table[c * 256 + level]; the bytes
// past `bands` (RGB's padding) copied as they are. src and dst do not overlap.
void fp_pixels_lut(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, int64_t pixels, int pixel_bytes,
                   int bands, const uint8_t* table) {
    uint8_t t[4 * 256];  // a local copy: the stores below cannot alias it
    std::memcpy(t, table, 256 * (size_t)bands);
    if (pixel_bytes == 4 && bands == 3) {
        for (int64_t p = 0; p < pixels; ++p) {
            const uint8_t r = src[4 * p], g = src[4 * p + 1], b = src[4 * p + 2], pad = src[4 * p + 3];
            dst[4 * p] = t[r];
            dst[4 * p + 1] = t[256 + g];
            dst[4 * p + 2] = t[512 + b];
            dst[4 * p + 3] = pad;
        }
        return;
    }
    for (int64_t p = 0; p < pixels; ++p)
        for (int c = 0; c < pixel_bytes; ++c)
            dst[p * pixel_bytes + c] = c < bands ? t[c * 256 + src[p * pixel_bytes + c]] : src[p * pixel_bytes + c];
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
