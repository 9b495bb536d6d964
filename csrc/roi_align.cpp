// RoIAlign with average pooling (He et al., Mask R-CNN), threaded over RoIs by the caller (ops.cpp).
//
// For RoI k on level l with scale s (1 / stride) and offset o = 0.5 if aligned else 0:
//   x0 = x1 s - o, y0 = y1 s - o, width = (x2 s - o) - x0, height = (y2 s - o) - y0 (>= 1 each when not aligned);
//   bin = width / out_w (height / out_h); grid g = sampling_ratio, or ceil(side / out side) when it is 0;
//   sample (i, j) of bin (ph, pw): y = (y0 + ph bin_h) + (i + 0.5) bin_h / g_h, x likewise;
//   value = bilinear interpolation of the feature map at (y, x) (0 outside [-1, H] x [-1, W], clamped inside);
//   output = (sum of the g_h g_w sample values, in order) / max(g_h g_w, 1).
// Every step is one float operation in the order mmcv's CPU RoIAlign evaluates it (the reference the simulated
// model runs), compiled without contraction (-ffp-contract=off), so each output equals mmcv's bit for bit. The
// difference is the loop order: channels innermost, so channels-last features are read as contiguous vectors.
#include "roi_align.h"

#include <cmath>
#include <cstdint>
#include <vector>

namespace rebnn {
namespace {

// One axis of one sample: the two neighbouring rows (columns) and their weights.
struct AxisSample {
  bool inside;    // within [-1, size]: otherwise the sample contributes 0 (weights 0 at offset 0)
  int64_t low, high;
  float l, h;     // weight of high = l, of low = h = 1 - l
};

AxisSample axis_sample(float v, int64_t size) {
  AxisSample s{};
  if (v < -1.0 || v > size) return s;  // inside = false, weights 0
  s.inside = true;
  if (v <= 0) v = 0;
  s.low = static_cast<int64_t>(static_cast<int>(v));
  if (s.low >= size - 1) {
    s.low = s.high = size - 1;
    v = static_cast<float>(s.low);
  } else {
    s.high = s.low + 1;
  }
  s.l = v - static_cast<float>(s.low);
  s.h = static_cast<float>(1. - s.l);
  return s;
}

// The sample positions along one axis: start + p bin + (i + 0.5) bin / grid, for p < out, i < grid.
void axis_samples(float start, float bin, int64_t out, int64_t grid, int64_t size, std::vector<AxisSample>& dst) {
  dst.resize(out * grid);
  for (int64_t p = 0; p < out; ++p)
    for (int64_t i = 0; i < grid; ++i) {
      const float v = start + static_cast<float>(p) * bin +
                      static_cast<float>(static_cast<float>(i) + .5f) * bin / static_cast<float>(grid);
      dst[p * grid + i] = axis_sample(v, size);
    }
}

template <bool UnitChannelStride>
inline void accumulate(float* acc, int64_t channels, int64_t sc, const float* p1, const float* p2, const float* p3,
                       const float* p4, float w1, float w2, float w3, float w4) {
  const int64_t step = UnitChannelStride ? 1 : sc;
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t i = c * step;
    acc[c] = acc[c] + (((w1 * p1[i] + w2 * p2[i]) + w3 * p3[i]) + w4 * p4[i]);
  }
}

}  // namespace

void roi_align_range(const RoIAlignArgs& a, int64_t begin, int64_t end, float* acc) {
  std::vector<AxisSample> ys, xs;
  const int64_t bins = a.out_h * a.out_w;
  for (int64_t k = begin; k < end; ++k) {
    const float* roi = a.rois + k * 5;
    const RoIAlignLevel& lv = a.levels[a.level[k]];
    const float* base = lv.x + static_cast<int64_t>(static_cast<int>(roi[0])) * lv.sn;
    const float offset = a.aligned ? 0.5f : 0.0f;
    const float x0 = roi[1] * lv.spatial_scale - offset, y0 = roi[2] * lv.spatial_scale - offset;
    const float x1 = roi[3] * lv.spatial_scale - offset, y1 = roi[4] * lv.spatial_scale - offset;
    float width = x1 - x0, height = y1 - y0;
    if (!a.aligned) {
      width = width > 1.0f ? width : 1.0f;
      height = height > 1.0f ? height : 1.0f;
    }
    const float bin_h = height / static_cast<float>(a.out_h), bin_w = width / static_cast<float>(a.out_w);
    const int64_t grid_h = a.sampling_ratio > 0 ? a.sampling_ratio
                                                : static_cast<int>(std::ceil(height / static_cast<float>(a.out_h)));
    const int64_t grid_w = a.sampling_ratio > 0 ? a.sampling_ratio
                                                : static_cast<int>(std::ceil(width / static_cast<float>(a.out_w)));
    const float count = static_cast<float>(grid_h * grid_w > 1 ? grid_h * grid_w : 1);
    axis_samples(y0, bin_h, a.out_h, grid_h, lv.h, ys);
    axis_samples(x0, bin_w, a.out_w, grid_w, lv.w, xs);
    float* out = a.out + k * a.channels * bins;
    for (int64_t ph = 0; ph < a.out_h; ++ph)
      for (int64_t pw = 0; pw < a.out_w; ++pw) {
        for (int64_t c = 0; c < a.channels; ++c) acc[c] = 0.0f;
        for (int64_t i = 0; i < grid_h; ++i) {
          const AxisSample& y = ys[ph * grid_h + i];
          for (int64_t j = 0; j < grid_w; ++j) {
            const AxisSample& x = xs[pw * grid_w + j];
            const bool inside = y.inside && x.inside;
            const int64_t r_lo = inside ? y.low * lv.sh : 0, r_hi = inside ? y.high * lv.sh : 0;
            const int64_t c_lo = inside ? x.low * lv.sw : 0, c_hi = inside ? x.high * lv.sw : 0;
            const float w1 = inside ? y.h * x.h : 0.0f, w2 = inside ? y.h * x.l : 0.0f;
            const float w3 = inside ? y.l * x.h : 0.0f, w4 = inside ? y.l * x.l : 0.0f;
            const float *p1 = base + r_lo + c_lo, *p2 = base + r_lo + c_hi;
            const float *p3 = base + r_hi + c_lo, *p4 = base + r_hi + c_hi;
            if (lv.sc == 1)
              accumulate<true>(acc, a.channels, 1, p1, p2, p3, p4, w1, w2, w3, w4);
            else
              accumulate<false>(acc, a.channels, lv.sc, p1, p2, p3, p4, w1, w2, w3, w4);
          }
        }
        float* dst = out + ph * a.out_w + pw;
        for (int64_t c = 0; c < a.channels; ++c) dst[c * bins] = acc[c] / count;
      }
  }
}

}  // namespace rebnn
