// rebnn_detect: run a binary FCOS-type detector from an AOTInductor package (tools/export_pt2.py --aoti) and
// print the detections of one image. Needs libtorch and the rebnn kernel library (librebnn_ops.so, linked in: its
// TORCH_LIBRARY registration is what the package's torch.ops.rebnn.* calls find); no Python.
//
//   rebnn_detect MODEL.pt2 IMAGE.ppm      ->  one line per detection: label score x1 y1 x2 y2 (original pixels)
//
// The steps are those of rebnn_det/deploy/pt2_runtime.py (ExportedDetector.preprocess) and
// rebnn_det/deploy/postprocess.py (dense_detections for an FCOSHead: MlvlPointGenerator priors,
// filter_scores_and_topk, DistancePointBBoxCoder, rescale, centerness, min_bbox_size, mmcv's batched_nms with the
// class offset, max_per_img), in the same ATen operations and float32 arithmetic; the package's metadata (written
// by the exporter, plain strings) carries every setting. The image is a binary PPM (P6, 8-bit RGB); mmcv's BGR
// order is restored before the data preprocessor's channel swap, so the pixels are those cv2 would read.
#include <ATen/ATen.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using Metadata = std::unordered_map<std::string, std::string>;

const std::string& field(const Metadata& meta, const std::string& key) {
  auto it = meta.find("rebnn_det." + key);
  if (it == meta.end()) {
    throw std::runtime_error("the package has no metadata rebnn_det." + key +
                             " (export it with tools/export_pt2.py --aoti)");
  }
  return it->second;
}

std::vector<double> numbers(const Metadata& meta, const std::string& key) {
  std::vector<double> out;
  std::stringstream in(field(meta, key));
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stod(item));
  return out;
}

double number(const Metadata& meta, const std::string& key) {
  auto values = numbers(meta, key);
  if (values.size() != 1) throw std::runtime_error("metadata rebnn_det." + key + " is not one number");
  return values[0];
}

// uint8 [H, W, 3] in BGR order (what mmcv.imread returns)
at::Tensor read_ppm_as_bgr(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot open image " + path);
  std::string magic;
  int width = 0, height = 0, maxval = 0;
  file >> magic >> width >> height >> maxval;
  if (magic != "P6" || width <= 0 || height <= 0 || maxval != 255) {
    throw std::runtime_error(path + ": expected a binary PPM (P6) with 8-bit samples");
  }
  file.get();  // the single whitespace after maxval
  auto rgb = at::empty({height, width, 3}, at::kByte);
  file.read(reinterpret_cast<char*>(rgb.data_ptr<uint8_t>()), rgb.numel());
  if (file.gcount() != rgb.numel()) throw std::runtime_error(path + ": truncated pixel data");
  return rgb.flip({2}).contiguous();
}

struct Preprocessed {
  at::Tensor inputs;  // [1, 3, H', W'] float32
  int64_t img_h, img_w;
  double scale_w, scale_h;
};

// ExportedDetector.resized_shape + preprocess
Preprocessed preprocess(const at::Tensor& bgr, const Metadata& meta) {
  int64_t h = bgr.size(0), w = bgr.size(1), new_h = h, new_w = w;
  auto scale = numbers(meta, "resize_scale");  // (w, h), empty: no resize
  if (!scale.empty()) {
    if (number(meta, "resize_keep_ratio") != 0) {
      double factor = std::min(std::max(scale[0], scale[1]) / std::max(h, w),
                               std::min(scale[0], scale[1]) / std::min(h, w));
      new_h = static_cast<int64_t>(h * factor + 0.5);
      new_w = static_cast<int64_t>(w * factor + 0.5);
    } else {
      new_w = static_cast<int64_t>(scale[0]);
      new_h = static_cast<int64_t>(scale[1]);
    }
  }
  auto chw = bgr.permute({2, 0, 1});
  if (new_h != h || new_w != w) {
    auto resized = at::upsample_bilinear2d(chw.unsqueeze(0).to(at::kFloat), {new_h, new_w}, false);
    chw = resized[0].round().clamp(0, 255).to(at::kByte);
  }
  auto x = number(meta, "bgr_to_rgb") != 0 ? chw.index_select(0, at::tensor({2, 1, 0}, at::kLong)) : chw;
  x = x.to(at::kFloat);
  auto mean = numbers(meta, "mean"), stdev = numbers(meta, "std");
  if (!mean.empty()) {
    auto as_tensor = [](const std::vector<double>& v) {
      std::vector<float> f(v.begin(), v.end());
      return at::tensor(f).view({-1, 1, 1});
    };
    x = (x - as_tensor(mean)) / as_tensor(stdev);
  }
  auto divisor = std::max<int64_t>(static_cast<int64_t>(number(meta, "pad_size_divisor")), 1);
  int64_t pad_h = (new_h + divisor - 1) / divisor * divisor - new_h;
  int64_t pad_w = (new_w + divisor - 1) / divisor * divisor - new_w;
  x = at::constant_pad_nd(x, {0, pad_w, 0, pad_h}, number(meta, "pad_value"));
  return {x.unsqueeze(0), new_h, new_w, static_cast<double>(new_w) / w, static_cast<double>(new_h) / h};
}

// mmcv's nms_cpu: greedy suppression in score order, IoU > threshold in float32; the kept indices in that order
at::Tensor greedy_nms(const at::Tensor& boxes, const at::Tensor& scores, float iou_threshold, int offset) {
  if (boxes.size(0) == 0) return at::empty({0}, at::kLong);
  auto order = std::get<1>(scores.sort(0, true));
  auto sorted = boxes.index_select(0, order).contiguous();
  const float* b = sorted.data_ptr<float>();
  int64_t n = sorted.size(0);
  std::vector<float> areas(n);
  for (int64_t i = 0; i < n; ++i) {
    areas[i] = (b[4 * i + 2] - b[4 * i] + offset) * (b[4 * i + 3] - b[4 * i + 1] + offset);
  }
  std::vector<char> selected(n, 1);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (!selected[i]) continue;
    keep.push_back(i);
    for (int64_t j = i + 1; j < n; ++j) {
      if (!selected[j]) continue;
      float xx1 = std::max(b[4 * i], b[4 * j]), yy1 = std::max(b[4 * i + 1], b[4 * j + 1]);
      float xx2 = std::min(b[4 * i + 2], b[4 * j + 2]), yy2 = std::min(b[4 * i + 3], b[4 * j + 3]);
      float iw = std::max(0.0f, xx2 - xx1 + offset), ih = std::max(0.0f, yy2 - yy1 + offset);
      float inter = iw * ih;
      if (inter / (areas[i] + areas[j] - inter) > iou_threshold) selected[j] = 0;
    }
  }
  return order.index_select(0, at::tensor(keep, at::kLong));
}

struct Detections {
  at::Tensor bboxes, scores, labels;
};

// postprocess.dense_detections for an FCOSHead (rescale=True)
Detections fcos_detections(const std::vector<at::Tensor>& outs, const Metadata& meta, const Preprocessed& img) {
  auto strides = numbers(meta, "strides");  // (w, h) per level
  size_t levels = strides.size() / 2;
  if (outs.size() != 3 * levels) {
    throw std::runtime_error("the network returned " + std::to_string(outs.size()) + " tensors, not 3 x " +
                             std::to_string(levels) + " levels");
  }
  auto num_classes = static_cast<int64_t>(number(meta, "num_classes"));
  double score_thr = number(meta, "score_thr"), prior_offset = number(meta, "prior_offset");
  auto nms_pre = static_cast<int64_t>(number(meta, "nms_pre"));
  std::vector<at::Tensor> all_boxes, all_priors, all_scores, all_labels, all_factors;
  for (size_t l = 0; l < levels; ++l) {
    auto cls = outs[l][0], reg = outs[levels + l][0], ctr = outs[2 * levels + l][0];
    int64_t feat_h = cls.size(1), feat_w = cls.size(2);
    auto scores = cls.permute({1, 2, 0}).reshape({-1, num_classes}).sigmoid();
    auto bbox_pred = reg.permute({1, 2, 0}).reshape({-1, 4});
    auto shift_x = ((at::arange(feat_w, at::kLong) + prior_offset) * strides[2 * l]).to(at::kFloat);
    auto shift_y = ((at::arange(feat_h, at::kLong) + prior_offset) * strides[2 * l + 1]).to(at::kFloat);
    auto grid = at::meshgrid({shift_y, shift_x}, "ij");
    auto priors = at::stack({grid[1].reshape(-1), grid[0].reshape(-1)}, -1);
    // filter_scores_and_topk
    auto valid_mask = scores > score_thr;
    auto valid_scores = scores.masked_select(valid_mask);
    auto valid_idxs = at::nonzero(valid_mask);
    int64_t count = valid_idxs.size(0);
    int64_t num_topk = nms_pre < 0 ? std::max<int64_t>(count + nms_pre, 0) : std::min(nms_pre, count);
    auto sorted = valid_scores.sort(-1, true);
    auto top = std::get<1>(sorted).slice(0, 0, num_topk);
    auto kept = valid_idxs.index_select(0, top);
    auto keep_idxs = kept.select(1, 0), labels = kept.select(1, 1);
    all_scores.push_back(std::get<0>(sorted).slice(0, 0, num_topk));
    all_labels.push_back(labels);
    all_boxes.push_back(bbox_pred.index_select(0, keep_idxs));
    all_priors.push_back(priors.index_select(0, keep_idxs));
    all_factors.push_back(ctr.permute({1, 2, 0}).reshape(-1).sigmoid().index_select(0, keep_idxs));
  }
  auto distance = at::cat(all_boxes), points = at::cat(all_priors);
  auto scores = at::cat(all_scores), labels = at::cat(all_labels), factors = at::cat(all_factors);
  // DistancePointBBoxCoder.decode, clipped to the resized image
  auto px = points.select(1, 0), py = points.select(1, 1);
  auto bboxes = at::stack({px - distance.select(1, 0), py - distance.select(1, 1), px + distance.select(1, 2),
                           py + distance.select(1, 3)}, -1);
  if (number(meta, "clip_border") != 0) {
    bboxes.slice(1, 0, 4, 2).clamp_(0, img.img_w);
    bboxes.slice(1, 1, 4, 2).clamp_(0, img.img_h);
  }
  // rescale to the original image, then the centerness
  std::vector<float> inverse = {static_cast<float>(1 / img.scale_w), static_cast<float>(1 / img.scale_h),
                                static_cast<float>(1 / img.scale_w), static_cast<float>(1 / img.scale_h)};
  bboxes = bboxes * at::tensor(inverse);
  scores = scores * factors;
  double min_bbox_size = number(meta, "min_bbox_size");
  if (min_bbox_size >= 0) {
    auto w = bboxes.select(1, 2) - bboxes.select(1, 0), h = bboxes.select(1, 3) - bboxes.select(1, 1);
    auto valid = ((w > min_bbox_size) & (h > min_bbox_size)).nonzero().view(-1);
    bboxes = bboxes.index_select(0, valid);
    scores = scores.index_select(0, valid);
    labels = labels.index_select(0, valid);
  }
  if (bboxes.size(0) == 0) return {bboxes, scores, labels};
  // mmcv's batched_nms below split_thr (the exporter checks nms_pre x levels < split_thr): one nms of the boxes
  // shifted apart per class by labels * (max coordinate + 1)
  auto max_coordinate = bboxes.max();
  auto offsets = labels.to(at::kFloat) * (max_coordinate + at::ones({}, at::kFloat));
  auto for_nms = bboxes + offsets.unsqueeze(1);
  double nms_score_thr = number(meta, "nms_score_threshold");
  auto candidates = at::arange(bboxes.size(0), at::kLong);
  if (nms_score_thr > 0) candidates = (scores > nms_score_thr).nonzero().view(-1);
  auto keep = candidates.index_select(
      0, greedy_nms(for_nms.index_select(0, candidates), scores.index_select(0, candidates),
                    static_cast<float>(number(meta, "iou_threshold")),
                    static_cast<int>(number(meta, "nms_offset"))));
  auto nms_max_num = static_cast<int64_t>(number(meta, "nms_max_num"));
  if (nms_max_num > 0) keep = keep.slice(0, 0, nms_max_num);
  keep = keep.slice(0, 0, static_cast<int64_t>(number(meta, "max_per_img")));
  return {bboxes.index_select(0, keep), scores.index_select(0, keep), labels.index_select(0, keep)};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " MODEL.pt2 IMAGE.ppm\n";
    return 2;
  }
  try {
    torch::inductor::AOTIModelPackageLoader loader(argv[1]);
    auto meta = loader.get_metadata();
    if (field(meta, "type") != "fcos") {
      throw std::runtime_error("rebnn_detect runs FCOS-type detectors; the package holds a " +
                               field(meta, "type"));
    }
    auto img = preprocess(read_ppm_as_bgr(argv[2]), meta);
    auto outs = loader.run({img.inputs});
    auto det = fcos_detections(outs, meta, img);
    auto boxes = det.bboxes.contiguous();
    for (int64_t i = 0; i < boxes.size(0); ++i) {
      std::printf("%lld %.9g %.9g %.9g %.9g %.9g\n", static_cast<long long>(det.labels[i].item<int64_t>()),
                  det.scores[i].item<float>(), boxes[i][0].item<float>(), boxes[i][1].item<float>(),
                  boxes[i][2].item<float>(), boxes[i][3].item<float>());
    }
  } catch (const std::exception& e) {
    std::cerr << "rebnn_detect: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
