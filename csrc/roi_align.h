// RoIAlign (average pooling, Mask R-CNN's bilinear sampling) over several feature levels at once, threaded over
// RoIs. The interface a detector's deploy mode uses in place of mmcv's one-thread CPU RoIAlign; see roi_align.cpp
// for the arithmetic, which is mmcv's (the same float operations in the same order), so the outputs are equal.
#pragma once
#include <cstdint>

namespace rebnn {

struct RoIAlignLevel {
  const float* x;          // features [N, C, H, W] with arbitrary element strides (channels-last: sc == 1)
  int64_t sn, sc, sh, sw;  // strides of x (elements)
  int64_t h, w;
  float spatial_scale;     // 1 / the level's stride
};

struct RoIAlignArgs {
  const RoIAlignLevel* levels;
  int64_t num_levels;
  const float* rois;       // [K, 5]: batch index, x1, y1, x2, y2 (image coordinates)
  const int64_t* level;    // [K]: the level each RoI is pooled from
  int64_t channels, out_h, out_w;
  int64_t sampling_ratio;  // samples per bin side; 0: ceil(RoI side / output side) (adaptive)
  bool aligned;            // shift the RoI by -0.5 px (pixel centres), as mmcv's aligned=True
  float* out;              // [K, C, out_h, out_w] contiguous
};

// Pool RoIs [begin, end). `scratch` holds channels floats.
void roi_align_range(const RoIAlignArgs& a, int64_t begin, int64_t end, float* scratch);

}  // namespace rebnn
