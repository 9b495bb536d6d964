// Max pooling of a float feature map of any strides into a channels-last output, threaded over output rows by the
// caller (ops.cpp). Deploy mode runs the backbone stem's max pool with it: PyTorch's CPU max pool is ~7x slower on
// NCHW input than on channels-last, and the next layer (a binary conv) reads channels-last fastest. The maximum is
// exact whatever the order, so the values equal torch's (NaN propagates the same way: a NaN in the window wins).
#pragma once
#include <cstdint>

namespace rebnn {

struct MaxPoolArgs {
  const float* x;          // [N, C, H, W] with arbitrary element strides
  int64_t sn, sc, sh, sw;  // strides of x (elements)
  int64_t n, c, h, w;
  int64_t kh, kw, sy, sx, ph, pw;  // window, stride, padding (padded positions never win)
  int64_t ho, wo;
  float* out;              // [N][Ho][Wo][C] (channels-last)
};

// Output rows [begin, end) (row = n * Ho + oy); `tmp` holds Wo floats.
void max_pool_rows(const MaxPoolArgs& a, int64_t begin, int64_t end, float* tmp);

}  // namespace rebnn
