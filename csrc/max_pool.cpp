// See max_pool.h. Per output row and channel: the row's Wo maxima are computed from the input rows of the window
// (contiguous reads along W for NCHW input), then written to their channels-last places.
#include "max_pool.h"

#include <cmath>
#include <limits>

namespace rebnn {

void max_pool_rows(const MaxPoolArgs& a, int64_t begin, int64_t end, float* tmp) {
  const float lowest = -std::numeric_limits<float>::infinity();
  for (int64_t r = begin; r < end; ++r) {
    const int64_t n = r / a.ho, oy = r % a.ho;
    const int64_t y0 = oy * a.sy - a.ph;
    const int64_t ky0 = y0 < 0 ? -y0 : 0, ky1 = y0 + a.kh > a.h ? a.h - y0 : a.kh;
    float* out_row = a.out + (n * a.ho + oy) * a.wo * a.c;
    for (int64_t c = 0; c < a.c; ++c) {
      const float* plane = a.x + n * a.sn + c * a.sc;
      for (int64_t ox = 0; ox < a.wo; ++ox) tmp[ox] = lowest;
      for (int64_t ky = ky0; ky < ky1; ++ky) {
        const float* row = plane + (y0 + ky) * a.sh;
        for (int64_t ox = 0; ox < a.wo; ++ox) {
          const int64_t x0 = ox * a.sx - a.pw;
          const int64_t kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + a.kw > a.w ? a.w - x0 : a.kw;
          float m = tmp[ox];
          for (int64_t kx = kx0; kx < kx1; ++kx) {
            const float v = row[(x0 + kx) * a.sw];
            if (v > m || std::isnan(v)) m = v;
          }
          tmp[ox] = m;
        }
      }
      for (int64_t ox = 0; ox < a.wo; ++ox) out_row[ox * a.c + c] = tmp[ox];
    }
  }
}

}  // namespace rebnn
