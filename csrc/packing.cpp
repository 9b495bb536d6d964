// Activation packing: sign(x - threshold) of every channel of a pixel -> 64-bit words (bit 1 = sign -1), written
// into a spatially padded channels-last buffer (the format of rebnn_det/deploy/packing.py plus a padded border).
// The comparison is done on the float difference x - threshold (what RSign computes in training), so the bits
// equal the training graph's signs exactly, sign(0) = +1 included.
#include <cstdint>
#include <cstring>

#include "isa.h"
#include "rebnn_kernels.h"

namespace rebnn {
namespace {

REBNN_INLINE void fill_pad(const PackArgs& a, uint64_t* dst, int64_t pixels) {
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t k = 0; k < a.words; ++k) dst[p * a.words + k] = a.pad_word[k];
}

// Border rows and columns; returns the input row (nullptr when the whole padded row is border).
REBNN_INLINE const float* pack_border(const PackArgs& a, int64_t row, uint64_t** out_row) {
  const int64_t hp = a.h + 2 * a.ph, wp = a.w + 2 * a.pw;
  const int64_t n = row / hp, y = row % hp - a.ph;
  uint64_t* dst = a.out + row * wp * a.words;
  *out_row = dst;
  if (y < 0 || y >= a.h) {
    fill_pad(a, dst, wp);
    return nullptr;
  }
  fill_pad(a, dst, a.pw);
  fill_pad(a, dst + (a.pw + a.w) * a.words, a.pw);
  return a.x + n * a.sn + y * a.sh;
}

// Any strides, one pixel at a time.
REBNN_INLINE void pack_row_generic(const PackArgs& a, int64_t row) {
  uint64_t* dst;
  const float* src = pack_border(a, row, &dst);
  if (!src) return;
  dst += a.pw * a.words;
  for (int64_t x = 0; x < a.w; ++x) {
    const float* px = src + x * a.sw;
    for (int64_t k = 0; k < a.words; ++k) {
      const int64_t c0 = k * 64, nb = a.c - c0 < 64 ? a.c - c0 : 64;
      uint64_t word = 0;
      for (int64_t b = 0; b < nb; ++b) {
        float v = px[(c0 + b) * a.sc];
        if (a.threshold) v = v - a.threshold[c0 + b];
        word |= static_cast<uint64_t>(v < 0.0f) << b;
      }
      dst[x * a.words + k] = word;
    }
  }
}

void pack_row_portable(const PackArgs& a, int64_t row) { pack_row_generic(a, row); }

#ifdef REBNN_X86
REBNN_AVX2 void pack_row_avx2(const PackArgs& a, int64_t row) { pack_row_generic(a, row); }

// Channels contiguous (channels-last input): 16 channels -> one compare mask.
REBNN_AVX512 void pack_row_avx512_cl(const PackArgs& a, const float* src, uint64_t* dst) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t x = 0; x < a.w; ++x) {
    const float* px = src + x * a.sw;
    for (int64_t k = 0; k < a.words; ++k) {
      uint64_t word = 0;
      for (int q = 0; q < 4; ++q) {
        const int64_t c0 = k * 64 + q * 16;
        if (c0 >= a.c) break;
        const __mmask16 m = a.c - c0 >= 16 ? static_cast<__mmask16>(0xffff)
                                           : static_cast<__mmask16>((1u << (a.c - c0)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, px + c0);
        if (a.threshold) v = _mm512_sub_ps(v, _mm512_maskz_loadu_ps(m, a.threshold + c0));
        const __mmask16 neg = _mm512_mask_cmp_ps_mask(m, v, zero, _CMP_LT_OQ);
        word |= static_cast<uint64_t>(neg) << (16 * q);
      }
      dst[x * a.words + k] = word;
    }
  }
}

// Pixels contiguous (NCHW-like input): 16 pixels of one channel -> one compare mask, whose bits are OR-ed into
// the 16 pixels' words with masked ORs.
REBNN_AVX512 void pack_row_avx512_px(const PackArgs& a, const float* src, uint64_t* dst) {
  const __m512 zero = _mm512_setzero_ps();
  alignas(64) uint64_t tmp[16];
  for (int64_t x0 = 0; x0 < a.w; x0 += 16) {
    const int64_t nx = a.w - x0 < 16 ? a.w - x0 : 16;
    const __mmask16 xm = nx == 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << nx) - 1);
    for (int64_t k = 0; k < a.words; ++k) {
      __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
      const int64_t c0 = k * 64, nb = a.c - c0 < 64 ? a.c - c0 : 64;
      for (int64_t b = 0; b < nb; ++b) {
        __m512 v = _mm512_maskz_loadu_ps(xm, src + (c0 + b) * a.sc + x0);
        if (a.threshold) v = _mm512_sub_ps(v, _mm512_set1_ps(a.threshold[c0 + b]));
        const __mmask16 neg = _mm512_mask_cmp_ps_mask(xm, v, zero, _CMP_LT_OQ);
        const __m512i bit = _mm512_set1_epi64(static_cast<long long>(uint64_t{1} << b));
        lo = _mm512_mask_or_epi64(lo, static_cast<__mmask8>(neg), lo, bit);
        hi = _mm512_mask_or_epi64(hi, static_cast<__mmask8>(neg >> 8), hi, bit);
      }
      _mm512_store_si512(tmp, lo);
      _mm512_store_si512(tmp + 8, hi);
      for (int64_t i = 0; i < nx; ++i) dst[(x0 + i) * a.words + k] = tmp[i];
    }
  }
}

REBNN_AVX512 void pack_row_avx512(const PackArgs& a, int64_t row) {
  uint64_t* dst;
  const float* src = pack_border(a, row, &dst);
  if (!src) return;
  dst += a.pw * a.words;
  if (a.sc == 1)
    pack_row_avx512_cl(a, src, dst);
  else if (a.sw == 1)
    pack_row_avx512_px(a, src, dst);
  else
    pack_row_generic(a, row);
}

#endif  // REBNN_X86

}  // namespace

void pack_rows(Isa isa, const PackArgs& a, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    switch (isa) {
#ifdef REBNN_X86
      case Isa::avx512: pack_row_avx512(a, r); break;
      case Isa::avx2: pack_row_avx2(a, r); break;
#endif
      default: pack_row_portable(a, r); break;
    }
  }
}

}  // namespace rebnn
