// See max_pool.h. Per output row and channel, the Wo maxima are built window tap by window tap (ky, then kx: the
// order torch compares in), each tap a pass over the row's outputs whose window holds it -- a loop the compiler
// vectorizes --, then written to their channels-last places.
#include "max_pool.h"

#include <cmath>
#include <algorithm>
#include <limits>

#include "isa.h"

namespace rebnn {
namespace {

// m = v if v > m or v is NaN (torch's max pool rule: a NaN wins and stays)
REBNN_INLINE float take_max(float m, float v) { return (v > m || v != v) ? v : m; }

// One window tap over the outputs [lo, hi) of a row: tmp[ox] = max(tmp[ox], value(src[ox * step])), value = the
// stem's BN (one fused multiply-add, as PyTorch's CPU eval BN) and ReLU (torch.relu: NaN and -0 kept) when asked.
// Compile-time flags and a unit-stride specialisation keep the loop vectorizable.
template <bool BN, bool RELU>
REBNN_INLINE void tap_pass(float* tmp, const float* src, int64_t step, int64_t lo, int64_t hi, float scale,
                           float shift) {
  for (int64_t ox = lo; ox < hi; ++ox) {
    float v = src[ox * step];
    if (BN) v = std::fma(v, scale, shift);
    if (RELU) v = std::max(v, 0.0f);  // (v < 0) ? 0 : v, i.e. torch.relu (NaN and -0 kept)
    tmp[ox] = take_max(tmp[ox], v);
  }
}

template <bool BN, bool RELU>
REBNN_INLINE void pool_rows(const MaxPoolArgs& a, int64_t begin, int64_t end, float* tmp) {
  const float lowest = -std::numeric_limits<float>::infinity();
  for (int64_t r = begin; r < end; ++r) {
    const int64_t n = r / a.ho, oy = r % a.ho;
    const int64_t y0 = oy * a.sy - a.ph;
    const int64_t ky0 = y0 < 0 ? -y0 : 0, ky1 = y0 + a.kh > a.h ? a.h - y0 : a.kh;
    float* out_row = a.out + (n * a.ho + oy) * a.wo * a.c;
    for (int64_t c = 0; c < a.c; ++c) {
      const float* plane = a.x + n * a.sn + c * a.sc;
      const float scale = BN ? a.bn_scale[c] : 1.0f, shift = BN ? a.bn_shift[c] : 0.0f;
      for (int64_t ox = 0; ox < a.wo; ++ox) tmp[ox] = lowest;
      for (int64_t ky = ky0; ky < ky1; ++ky) {
        const float* row = plane + (y0 + ky) * a.sh;
        for (int64_t kx = 0; kx < a.kw; ++kx) {
          // outputs ox whose window column x = ox * sx - pw + kx lies inside [0, w)
          const int64_t off = kx - a.pw;
          const int64_t lo = off < 0 ? (-off + a.sx - 1) / a.sx : 0;
          const int64_t hi_x = a.w - 1 - off;  // ox * sx <= hi_x
          const int64_t hi = hi_x < 0 ? 0 : (hi_x / a.sx + 1 < a.wo ? hi_x / a.sx + 1 : a.wo);
          if (a.sw == 1 && a.sx == 2)
            tap_pass<BN, RELU>(tmp, row + off, 2, lo, hi, scale, shift);
          else
            tap_pass<BN, RELU>(tmp, row + off * a.sw, a.sx * a.sw, lo, hi, scale, shift);
        }
      }
      if (a.relu_after)
        for (int64_t ox = 0; ox < a.wo; ++ox) out_row[ox * a.c + c] = std::max(tmp[ox], 0.0f);
      else
        for (int64_t ox = 0; ox < a.wo; ++ox) out_row[ox * a.c + c] = tmp[ox];
    }
  }
}

REBNN_INLINE void pool_rows_any(const MaxPoolArgs& a, int64_t begin, int64_t end, float* tmp) {
  const bool bn = a.bn_scale != nullptr;
  if (bn && a.relu) pool_rows<true, true>(a, begin, end, tmp);
  else if (bn) pool_rows<true, false>(a, begin, end, tmp);
  else if (a.relu) pool_rows<false, true>(a, begin, end, tmp);
  else pool_rows<false, false>(a, begin, end, tmp);
}

void rows_portable(const MaxPoolArgs& a, int64_t begin, int64_t end, float* tmp) {
  pool_rows_any(a, begin, end, tmp);
}

#ifdef REBNN_X86
REBNN_AVX2 void rows_avx2(const MaxPoolArgs& a, int64_t begin, int64_t end, float* tmp) {
  pool_rows_any(a, begin, end, tmp);
}
#endif

}  // namespace

void max_pool_rows(Isa isa, const MaxPoolArgs& a, int64_t begin, int64_t end, float* tmp) {
#ifdef REBNN_X86
  if (isa != Isa::portable) return rows_avx2(a, begin, end, tmp);
#endif
  rows_portable(a, begin, end, tmp);
}

}  // namespace rebnn
