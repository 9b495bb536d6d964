// XNOR-popcount binary convolution on packed channels-last activations.
//
// For an output pixel and output channel o:  count = sum over taps t, words k of (bits(k) - 2 popcount(a XOR w))
// = K * C_in - 2 * sum popcount(a XOR w) over all K = kh * kw taps (tail bits are zero in both operands). The input
// buffer is padded with a constant word pattern, so every tap is read without a branch: with pad_value = +1 the
// pattern is all zeros (sign +1), with -1 all channel bits set; with pad_value = 0 the pattern is zeros and each
// padded tap's contribution sum_c b[o, t, c] (= tap_sum) is subtracted afterwards, so padded taps contribute 0.
//
// Vectorization is over output channels: a 512-bit register holds the 64-bit words of 8 output channels (weight
// layout [C_out / 8][T][8]); one activation word is broadcast and XOR-ed with it, VPOPCNTQ counts, and a block of
// P output pixels x J channel vectors of accumulators reuses every loaded weight vector P times.
#include <cmath>
#include <cstdint>

#include "isa.h"
#include "rebnn_kernels.h"

namespace rebnn {
namespace {


// One output pixel's counts K * C_in - 2 * popcount sum; at a border (pad_value = 0) each padded tap's
// sum_c b[o, t, c] is subtracted, so it contributes 0. Exact in int32 and in float (small integers).
template <typename T>
REBNN_INLINE void pixel_counts(const ConvArgs& a, const int32_t* s, int32_t full, bool border, int64_t iy0,
                               int64_t ix0, T* dst) {
  for (int64_t o = 0; o < a.c_out; ++o) dst[o] = static_cast<T>(full - 2 * s[o]);
  if (!border) return;
  for (int64_t ky = 0; ky < a.kh; ++ky)
    for (int64_t kx = 0; kx < a.kw; ++kx) {
      const int64_t iy = iy0 + ky, ix = ix0 + kx;
      if (iy >= 0 && iy < a.h && ix >= 0 && ix < a.w) continue;
      const int32_t* ts = a.tap_sum + (ky * a.kw + kx) * a.c_out;
      for (int64_t o = 0; o < a.c_out; ++o) dst[o] -= static_cast<T>(ts[o]);
    }
}

// scratch[ow][OB * 8] holds sum popcount(a XOR w); turn it into counts (+ padding correction) and the epilogue.
// With out_nchw the pixel is computed in `pixel` (C_out floats) and then written to its NCHW places.
REBNN_INLINE void epilogue_row(const ConvArgs& a, int64_t n, int64_t oh, const int32_t* scratch, float* pixel) {
  const int64_t ob8 = ceil_div(a.c_out, 8) * 8;
  const int32_t full = static_cast<int32_t>(a.kh * a.kw * a.c_in);
  const int64_t iy0 = oh * a.sh - a.ph;
  const bool row_border = iy0 < 0 || iy0 + a.kh > a.h;
  const int64_t out_row = (n * a.ho + oh) * a.wo;
  for (int64_t ow = 0; ow < a.wo; ++ow) {
    const int32_t* s = scratch + ow * ob8;
    const int64_t ix0 = ow * a.sw - a.pw;
    const bool border = a.tap_sum && (row_border || ix0 < 0 || ix0 + a.kw > a.w);
    const int64_t pix = (out_row + ow) * a.c_out;
    // counts into the (int32) output buffer or a per-pixel float pass
    if (a.counts) {
      pixel_counts(a, s, full, border, iy0, ix0, a.counts + pix);
      continue;
    }
    float* dst = a.out_nchw ? pixel : a.out + pix;
    pixel_counts(a, s, full, border, iy0, ix0, dst);
    // The epilogue in the simulated model's order and rounding (eval mode), so the output is bit-identical:
    // ReBNNConv alpha * count (+ bias), BatchNorm as PyTorch's CPU kernel computes it (one fused multiply-add
    // with its per-channel terms), + residual, RPReLU prelu(y - shift_in, slope) + shift_out. Each step rounds
    // once, like the torch op it mirrors; setup.py compiles with -ffp-contract=off so nothing else is fused.
    for (int64_t o = 0; o < a.c_out; ++o) dst[o] = a.scale[o] * dst[o];
    if (a.bias)
      for (int64_t o = 0; o < a.c_out; ++o) dst[o] = dst[o] + a.bias[o];
    if (a.bn_scale)
      for (int64_t o = 0; o < a.c_out; ++o) dst[o] = std::fma(dst[o], a.bn_scale[o], a.bn_shift[o]);
    if (a.residual) {
      const int64_t rc = a.res_channels;
      const float* res = a.residual + (out_row + ow) * rc;
      for (int64_t base = 0; base < a.c_out; base += rc)
        for (int64_t o = 0; o < rc; ++o) dst[base + o] = dst[base + o] + res[o];
    }
    if (a.act_slope) {
      for (int64_t o = 0; o < a.c_out; ++o) {
        const float y = dst[o] - a.act_in[o];
        const float neg = y * a.act_slope[o];  // computed unconditionally: the loop vectorizes with a blend
        const float p = y > 0.0f ? y : neg;    // (setup.py's -fno-trapping-math lets it, AVX2 and SSE too)
        dst[o] = p + a.act_out[o];
      }
    }
    if (a.relu)  // torch.relu: max(y, 0) keeping NaN and -0 (ATen's clamp_min, scalar and vector alike)
      for (int64_t o = 0; o < a.c_out; ++o) dst[o] = dst[o] < 0.0f ? 0.0f : dst[o];
    if (a.out_nchw) {
      const int64_t plane = a.ho * a.wo;
      float* base = a.out + n * a.c_out * plane + oh * a.wo + ow;
      for (int64_t o = 0; o < a.c_out; ++o) base[o * plane] = dst[o];
    }
  }
}

// ---- portable: one pixel x 8 channels, __builtin_popcountll ---------------------------------------------------
REBNN_INLINE void popcount_row_generic(const ConvArgs& a, const uint64_t* act_row, int32_t* scratch) {
  const int64_t ob = ceil_div(a.c_out, 8), t_all = a.kh * a.kw * a.words;
  for (int64_t b = 0; b < ob; ++b) {
    const uint64_t* w = a.weight + b * t_all * 8;
    for (int64_t ow = 0; ow < a.wo; ++ow) {
      const uint64_t* px = act_row + ow * a.sw * a.words;
      int64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t t = 0; t < t_all; ++t) {
        const uint64_t v = px[a.tap_offset[t]];
        const uint64_t* wt = w + t * 8;
        for (int l = 0; l < 8; ++l) acc[l] += __builtin_popcountll(v ^ wt[l]);
      }
      int32_t* dst = scratch + ow * ob * 8 + b * 8;
      for (int l = 0; l < 8; ++l) dst[l] = static_cast<int32_t>(acc[l]);
    }
  }
}

void row_portable(const ConvArgs& a, int64_t n, int64_t oh, const uint64_t* act_row, int32_t* scratch,
                  float* pixel) {
  popcount_row_generic(a, act_row, scratch);
  epilogue_row(a, n, oh, scratch, pixel);
}

#ifdef REBNN_X86
// ---- AVX2: P pixels x 8 channels (two 256-bit halves), nibble-lookup popcount with byte accumulators ----------
template <int P>
REBNN_AVX2 void block_avx2(const ConvArgs& a, const uint64_t* act_row, int64_t ow, const uint64_t* w,
                           int32_t* dst, int64_t dst_stride) {
  const int64_t t_all = a.kh * a.kw * a.words;
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  const uint64_t* px[P];
  for (int p = 0; p < P; ++p) px[p] = act_row + (ow + p) * a.sw * a.words;
  __m256i acc[P][2];
  for (int p = 0; p < P; ++p) acc[p][0] = acc[p][1] = zero;
  for (int64_t t0 = 0; t0 < t_all; t0 += 31) {  // a byte counts at most 8 per step: flush before 255
    const int64_t t1 = t0 + 31 < t_all ? t0 + 31 : t_all;
    __m256i bytes[P][2];
    for (int p = 0; p < P; ++p) bytes[p][0] = bytes[p][1] = zero;
    for (int64_t t = t0; t < t1; ++t) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t * 8));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t * 8 + 4));
      const int64_t off = a.tap_offset[t];
      for (int p = 0; p < P; ++p) {
        const __m256i v = _mm256_set1_epi64x(static_cast<long long>(px[p][off]));
        const __m256i x0 = _mm256_xor_si256(v, w0), x1 = _mm256_xor_si256(v, w1);
        const __m256i c0 = _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x0, low)),
                                           _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x0, 4), low)));
        const __m256i c1 = _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x1, low)),
                                           _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x1, 4), low)));
        bytes[p][0] = _mm256_add_epi8(bytes[p][0], c0);
        bytes[p][1] = _mm256_add_epi8(bytes[p][1], c1);
      }
    }
    for (int p = 0; p < P; ++p) {
      acc[p][0] = _mm256_add_epi64(acc[p][0], _mm256_sad_epu8(bytes[p][0], zero));
      acc[p][1] = _mm256_add_epi64(acc[p][1], _mm256_sad_epu8(bytes[p][1], zero));
    }
  }
  for (int p = 0; p < P; ++p) {
    alignas(32) int64_t tmp[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[p][0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 4), acc[p][1]);
    for (int l = 0; l < 8; ++l) dst[p * dst_stride + l] = static_cast<int32_t>(tmp[l]);
  }
}

REBNN_AVX2 void row_avx2(const ConvArgs& a, int64_t n, int64_t oh, const uint64_t* act_row, int32_t* scratch,
                         float* pixel) {
  const int64_t ob = ceil_div(a.c_out, 8), t_all = a.kh * a.kw * a.words;
  for (int64_t b = 0; b < ob; ++b) {
    const uint64_t* w = a.weight + b * t_all * 8;
    int64_t ow = 0;
    for (; ow + 2 <= a.wo; ow += 2) block_avx2<2>(a, act_row, ow, w, scratch + ow * ob * 8 + b * 8, ob * 8);
    for (; ow < a.wo; ++ow) block_avx2<1>(a, act_row, ow, w, scratch + ow * ob * 8 + b * 8, ob * 8);
  }
  epilogue_row(a, n, oh, scratch, pixel);
}

// ---- AVX-512 VPOPCNTDQ: P pixels x J vectors of 8 channels --------------------------------------------------
template <int P, int J>
REBNN_AVX512 void block_avx512(const ConvArgs& a, const uint64_t* act_row, int64_t ow, const uint64_t* w,
                               int32_t* dst, int64_t dst_stride) {
  const int64_t t_all = a.kh * a.kw * a.words;
  const uint64_t* px[P];
  for (int p = 0; p < P; ++p) px[p] = act_row + (ow + p) * a.sw * a.words;
  __m512i acc[P][J];
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < J; ++j) acc[p][j] = _mm512_setzero_si512();
  for (int64_t t = 0; t < t_all; ++t) {
    __m512i wv[J];
    for (int j = 0; j < J; ++j) wv[j] = _mm512_loadu_si512(w + (j * t_all + t) * 8);
    const int64_t off = a.tap_offset[t];
    for (int p = 0; p < P; ++p) {
      const __m512i v = _mm512_set1_epi64(static_cast<long long>(px[p][off]));
      for (int j = 0; j < J; ++j)
        acc[p][j] = _mm512_add_epi64(acc[p][j], _mm512_popcnt_epi64(_mm512_xor_si512(v, wv[j])));
    }
  }
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < J; ++j)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + p * dst_stride + j * 8), _mm512_maskz_cvtepi64_epi32(0xff, acc[p][j]));
}

template <int J>
REBNN_AVX512 void row_block_avx512(const ConvArgs& a, const uint64_t* act_row, int64_t b, int32_t* scratch) {
  const int64_t ob = ceil_div(a.c_out, 8), t_all = a.kh * a.kw * a.words;
  const uint64_t* w = a.weight + b * t_all * 8;
  int64_t ow = 0;
  for (; ow + 4 <= a.wo; ow += 4) block_avx512<4, J>(a, act_row, ow, w, scratch + ow * ob * 8 + b * 8, ob * 8);
  for (; ow < a.wo; ++ow) block_avx512<1, J>(a, act_row, ow, w, scratch + ow * ob * 8 + b * 8, ob * 8);
}

REBNN_AVX512 void row_avx512(const ConvArgs& a, int64_t n, int64_t oh, const uint64_t* act_row, int32_t* scratch,
                             float* pixel) {
  const int64_t ob = ceil_div(a.c_out, 8);
  int64_t b = 0;
  for (; b + 2 <= ob; b += 2) row_block_avx512<2>(a, act_row, b, scratch);
  for (; b < ob; ++b) row_block_avx512<1>(a, act_row, b, scratch);
  epilogue_row(a, n, oh, scratch, pixel);
}

#endif  // REBNN_X86

}  // namespace

// sign(out - threshold) of output row (n, oh) packed into the next conv's padded buffer; the border rows above
// the image with its first row, those below with its last.
static void pack_next_row(Isa isa, const ConvArgs& a, int64_t n, int64_t oh) {
  const PackArgs& p = *a.pack_next;
  const int64_t first = n * (p.h + 2 * p.ph), row = first + p.ph + oh;
  if (oh == 0) pack_rows(isa, p, first, row);
  pack_rows(isa, p, row, row + 1);
  if (oh == a.ho - 1) pack_rows(isa, p, row + 1, first + p.h + 2 * p.ph);
}

void conv_rows(Isa isa, const ConvArgs& a, int64_t row_begin, int64_t row_end, int32_t* scratch, float* pixel) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t n = r / a.ho, oh = r % a.ho;
    const uint64_t* act_row = a.act + (n * a.hp + oh * a.sh) * a.wp * a.words;
    switch (isa) {
#ifdef REBNN_X86
      case Isa::avx512: row_avx512(a, n, oh, act_row, scratch, pixel); break;
      case Isa::avx2: row_avx2(a, n, oh, act_row, scratch, pixel); break;
#endif
      default: row_portable(a, n, oh, act_row, scratch, pixel); break;
    }
    if (a.pack_next) pack_next_row(isa, a, n, oh);
  }
}

}  // namespace rebnn
