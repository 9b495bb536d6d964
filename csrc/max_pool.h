// Max pooling of a float feature map of any strides into a channels-last output, threaded over output rows by the
// caller (ops.cpp), optionally after the eval BatchNorm and ReLU that precede it in a ResNet stem. Deploy mode runs
// the stem's BN -> ReLU -> max pool with it: PyTorch's CPU max pool is ~7x slower on NCHW input than on
// channels-last, the BN and ReLU are two more passes over the stem's largest tensor, and the next layer (a binary
// conv) reads channels-last fastest. Each element is y = fma(x, bn_scale[c], bn_shift[c]) (PyTorch's CPU eval BN,
// see rebnn_det/deploy/kernels.py: bn_terms), then y < 0 ? 0 : y (torch.relu), then the maximum -- exact whatever
// the order, and taken in torch's order anyway, so a NaN in the window gives NaN as in torch.
#pragma once
#include <cstdint>

#include "rebnn_kernels.h"

namespace rebnn {

struct MaxPoolArgs {
  const float* x;          // [N, C, H, W] with arbitrary element strides
  int64_t sn, sc, sh, sw;  // strides of x (elements)
  int64_t n, c, h, w;
  int64_t kh, kw, sy, sx, ph, pw;  // window, stride, padding (padded positions never win)
  int64_t ho, wo;
  const float* bn_scale;   // [C] or nullptr (no BN before the pool)
  const float* bn_shift;   // [C] with bn_scale
  bool relu;               // torch.relu before the pool (after the BN)
  bool relu_after;         // the same ReLU applied to each window's maximum instead: equal to relu then max as
                           // long as no BN output is -0 (i.e. no bn_shift is -0; the caller checks), and fast
  float* out;              // [N][Ho][Wo][C] (channels-last)
};

// Output rows [begin, end) (row = n * Ho + oy); `tmp` holds Wo floats. The BN's fused multiply-add runs on the
// FMA unit on the avx2/avx512 paths (same result as the portable path's std::fma, only faster).
void max_pool_rows(Isa isa, const MaxPoolArgs& a, int64_t begin, int64_t end, float* tmp);

}  // namespace rebnn
