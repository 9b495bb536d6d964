// The torch-facing operators: argument checks, output allocation, threading (at::parallel_for) and their
// registration as PyTorch custom operators (namespace `rebnn`, torch.library: schema + CPU kernel; the fake kernels
// that give output shapes to torch.compile / torch.export are in rebnn_det/deploy/custom_ops.py). The arithmetic
// lives in packing.cpp / binary_conv.cpp / roi_align.cpp / max_pool.cpp. No Python here: this file also builds into
// the plain C++ library a libtorch program loads (python_module.cpp is the Python extension's only extra).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <string>
#include <vector>

#include "rebnn_kernels.h"
#include "max_pool.h"
#include "roi_align.h"

namespace rebnn {
namespace {

Isa parse_isa(c10::string_view name) {
  Isa isa;
  if (name.empty() || name == "auto") return best_isa();
  if (name == "avx512") isa = Isa::avx512;
  else if (name == "avx2") isa = Isa::avx2;
  else if (name == "portable") isa = Isa::portable;
  else TORCH_CHECK(false, "unknown kernel ISA '", std::string(name), "'; allowed: 'auto', 'avx512', 'avx2', 'portable'");
  TORCH_CHECK(cpu_supports(isa), "this CPU cannot run the '", std::string(name), "' kernel path (best available: '",
              isa_name(best_isa()), "')");
  return isa;
}

void check_float_nchw(const at::Tensor& x, const char* what) {
  TORCH_CHECK(x.device().is_cpu(), what, " must be a CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat, what, " must be float32, got ", x.scalar_type());
  TORCH_CHECK(x.dim() == 4, what, " must be 4-d [N, C, H, W], got ", x.dim(), " dims");
}

void check_pad_value(double pad_value) {
  TORCH_CHECK(pad_value == 0.0 || pad_value == 1.0 || pad_value == -1.0,
              "pad_value must be 0, 1 or -1, got ", pad_value);
}

// The word pattern of a padded pixel of `c` channels: +1 (zero bits) for pad_value 0 and +1, -1 (set bits) for -1.
std::vector<uint64_t> pad_words(int64_t c, double pad_value) {
  check_pad_value(pad_value);
  const int64_t words = words_for(c);
  std::vector<uint64_t> pad_word(words, 0);
  if (pad_value == -1.0)
    for (int64_t k = 0; k < words; ++k) {
      const int64_t bits = c - 64 * k >= 64 ? 64 : c - 64 * k;
      pad_word[k] = bits == 64 ? ~uint64_t{0} : ((uint64_t{1} << bits) - 1);
    }
  return pad_word;
}

at::Tensor threshold_vector(const c10::optional<at::Tensor>& threshold, int64_t c) {
  if (!threshold.has_value() || !threshold->defined()) return at::Tensor();
  at::Tensor thr = threshold->to(at::kFloat).contiguous().reshape({-1});
  TORCH_CHECK(thr.numel() == c, "threshold has ", thr.numel(), " elements, input has ", c, " channels");
  return thr;
}

// The packing of a float [N, C, H, W] tensor `x` (any strides) into a new padded buffer `out`; `thr` and
// `pad_word` must outlive the returned arguments.
PackArgs pack_args(const at::Tensor& x, const at::Tensor& thr, int64_t ph, int64_t pw,
                   const std::vector<uint64_t>& pad_word, at::Tensor& out) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), words = words_for(c);
  out = at::empty({n, h + 2 * ph, w + 2 * pw, words}, x.options().dtype(at::kLong));
  return PackArgs{x.data_ptr<float>(), x.stride(0), x.stride(1), x.stride(2), x.stride(3),
                  thr.defined() ? thr.data_ptr<float>() : nullptr, n, c, h, w, ph, pw, words, pad_word.data(),
                  reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>())};
}

// sign(x - threshold) packed into [N, H + 2ph, W + 2pw, words] int64 with the pad_value pattern on the border.
at::Tensor pack_padded(const at::Tensor& x, const c10::optional<at::Tensor>& threshold, int64_t ph, int64_t pw,
                       double pad_value, c10::string_view isa_name_arg) {
  check_float_nchw(x, "input");
  TORCH_CHECK(ph >= 0 && pw >= 0, "padding must be >= 0");
  const std::vector<uint64_t> pad_word = pad_words(x.size(1), pad_value);
  const Isa isa = parse_isa(isa_name_arg);
  const at::Tensor thr = threshold_vector(threshold, x.size(1));
  at::Tensor out;
  const PackArgs a = pack_args(x, thr, ph, pw, pad_word, out);
  const int64_t rows = a.n * (a.h + 2 * ph);
  at::parallel_for(0, rows, 1, [&](int64_t b, int64_t e) { pack_rows(isa, a, b, e); });
  return out;
}

// What a conv packs of its own output for the next binary conv (its threshold and padding).
struct NextPack {
  bool on = false;
  at::Tensor threshold;
  int64_t ph = 0, pw = 0;
  double pad_value = 0.0;
};

struct Epilogue {
  at::Tensor scale, bias, bn_scale, bn_shift, residual, act_in, act_slope, act_out;
  bool relu = false;
};

at::Tensor per_channel(const c10::optional<at::Tensor>& t, int64_t c, const char* what) {
  if (!t.has_value() || !t->defined()) return at::Tensor();
  at::Tensor v = t->to(at::kFloat).contiguous().reshape({-1});
  TORCH_CHECK(v.numel() == c, what, " has ", v.numel(), " elements; expected one per output channel (", c, ")");
  return v;
}

// The conv over a packed padded input; writes float (epilogue) or int32 counts, channels-last [N, C_out, Ho, Wo].
at::Tensor conv_packed(const at::Tensor& packed, int64_t c_in, const at::Tensor& weight,
                       const c10::optional<at::Tensor>& tap_sum, int64_t c_out, int64_t kh, int64_t kw, int64_t sh,
                       int64_t sw, int64_t ph, int64_t pw, bool counts_mode, const Epilogue& ep, Isa isa,
                       const NextPack& next = NextPack(), at::Tensor* packed_next = nullptr,
                       bool out_nchw = false) {
  TORCH_CHECK(packed.scalar_type() == at::kLong && packed.dim() == 4 && packed.is_contiguous(),
              "packed input must be a contiguous int64 [N, Hp, Wp, words] tensor");
  const int64_t n = packed.size(0), hp = packed.size(1), wp = packed.size(2), words = packed.size(3);
  TORCH_CHECK(words == words_for(c_in), "packed input has ", words, " words per pixel; ", c_in, " channels need ",
              words_for(c_in));
  const int64_t h = hp - 2 * ph, w = wp - 2 * pw;
  TORCH_CHECK(sh >= 1 && sw >= 1 && kh >= 1 && kw >= 1, "kernel size and stride must be >= 1");
  TORCH_CHECK(hp >= kh && wp >= kw, "kernel ", kh, "x", kw, " larger than the padded input ", hp, "x", wp);
  const int64_t ho = (hp - kh) / sh + 1, wo = (wp - kw) / sw + 1;
  const int64_t ob = (c_out + 7) / 8, t_all = kh * kw * words;
  TORCH_CHECK(weight.scalar_type() == at::kLong && weight.is_contiguous() && weight.dim() == 3 &&
                  weight.size(0) == ob && weight.size(1) == t_all && weight.size(2) == 8,
              "kernel weight must be a contiguous int64 [ceil(C_out/8)=", ob, ", kh*kw*words=", t_all,
              ", 8] tensor, got ", weight.sizes());
  at::Tensor ts;
  if (tap_sum.has_value() && tap_sum->defined()) {
    ts = tap_sum->to(at::kInt).contiguous();
    TORCH_CHECK(ts.numel() == kh * kw * c_out, "tap_sum must hold [kh*kw, C_out] = ", kh * kw * c_out,
                " values, got ", ts.numel());
  }
  std::vector<int64_t> offsets(t_all);
  for (int64_t ky = 0; ky < kh; ++ky)
    for (int64_t kx = 0; kx < kw; ++kx)
      for (int64_t k = 0; k < words; ++k) offsets[(ky * kw + kx) * words + k] = (ky * wp + kx) * words + k;
  const auto cl = at::MemoryFormat::ChannelsLast;
  TORCH_CHECK(!(out_nchw && counts_mode), "the NCHW output is for the float output (not counts)");
  at::Tensor out = at::empty({n, c_out, ho, wo}, packed.options().dtype(counts_mode ? at::kInt : at::kFloat)
                                                     .memory_format(out_nchw ? at::MemoryFormat::Contiguous : cl));
  at::Tensor residual;
  if (ep.residual.defined()) {
    const auto& rs = ep.residual.sizes();
    TORCH_CHECK(rs.size() == 4 && rs[0] == n && rs[2] == ho && rs[3] == wo && rs[1] > 0 && c_out % rs[1] == 0,
                "residual has shape ", rs, "; the conv output is ", out.sizes(),
                " (the residual may have C_out / k channels, repeated k times)");
    residual = ep.residual.to(at::kFloat).contiguous(cl);
  }
  ConvArgs a{};
  a.act = reinterpret_cast<const uint64_t*>(packed.data_ptr<int64_t>());
  a.n = n; a.hp = hp; a.wp = wp; a.words = words;
  a.weight = reinterpret_cast<const uint64_t*>(weight.data_ptr<int64_t>());
  a.tap_offset = offsets.data();
  a.c_in = c_in; a.c_out = c_out; a.kh = kh; a.kw = kw; a.sh = sh; a.sw = sw; a.ph = ph; a.pw = pw;
  a.h = h; a.w = w; a.ho = ho; a.wo = wo;
  a.tap_sum = ts.defined() ? ts.data_ptr<int32_t>() : nullptr;
  a.out_nchw = out_nchw;
  if (counts_mode) {
    a.counts = out.data_ptr<int32_t>();
  } else {
    TORCH_CHECK(ep.scale.defined(), "scale is required");
    a.scale = ep.scale.data_ptr<float>();
    a.bias = ep.bias.defined() ? ep.bias.data_ptr<float>() : nullptr;
    TORCH_CHECK(ep.bn_scale.defined() == ep.bn_shift.defined(), "BatchNorm needs both bn_scale and bn_shift");
    a.bn_scale = ep.bn_scale.defined() ? ep.bn_scale.data_ptr<float>() : nullptr;
    a.bn_shift = ep.bn_shift.defined() ? ep.bn_shift.data_ptr<float>() : nullptr;
    a.residual = residual.defined() ? residual.data_ptr<float>() : nullptr;
    a.res_channels = residual.defined() ? residual.size(1) : 0;
    const bool act = ep.act_slope.defined();
    TORCH_CHECK(act == ep.act_in.defined() && act == ep.act_out.defined(),
                "RPReLU needs all of act_in, act_slope, act_out");
    a.act_in = act ? ep.act_in.data_ptr<float>() : nullptr;
    a.act_slope = act ? ep.act_slope.data_ptr<float>() : nullptr;
    a.act_out = act ? ep.act_out.data_ptr<float>() : nullptr;
    a.relu = ep.relu;
    a.out = out.data_ptr<float>();
  }
  PackArgs next_args{};
  std::vector<uint64_t> next_pad_word;
  at::Tensor next_thr;
  if (next.on) {
    TORCH_CHECK(!counts_mode, "packing the output for the next conv needs the float output (not counts)");
    TORCH_CHECK(next.ph >= 0 && next.pw >= 0, "the next conv's padding must be >= 0");
    next_pad_word = pad_words(c_out, next.pad_value);
    next_thr = threshold_vector(next.threshold, c_out);
    next_args = pack_args(out, next_thr, next.ph, next.pw, next_pad_word, *packed_next);
    a.pack_next = &next_args;
  }
  at::parallel_for(0, n * ho, 1, [&](int64_t b, int64_t e) {
    std::vector<int32_t> scratch(wo * ob * 8);
    std::vector<float> pixel(c_out);
    conv_rows(isa, a, b, e, scratch.data(), pixel.data());
  });
  return out;
}

std::tuple<at::Tensor, bool> pack_for_conv(const at::Tensor& x, const c10::optional<at::Tensor>& threshold,
                                           int64_t ph, int64_t pw, double pad_value, c10::string_view isa) {
  // pad_value 0 packs +1 bits on the border and corrects with tap_sum afterwards
  return {pack_padded(x, threshold, ph, pw, pad_value, isa), pad_value == 0.0};
}

at::Tensor conv_counts(const at::Tensor& x, const c10::optional<at::Tensor>& threshold, const at::Tensor& weight,
                       const c10::optional<at::Tensor>& tap_sum, int64_t c_out, int64_t kh, int64_t kw, int64_t sh,
                       int64_t sw, int64_t ph, int64_t pw, double pad_value, c10::string_view isa_arg) {
  const Isa isa = parse_isa(isa_arg);
  auto [packed, zero_pad] = pack_for_conv(x, threshold, ph, pw, pad_value, isa_arg);
  TORCH_CHECK(!(zero_pad && (ph || pw)) || (tap_sum.has_value() && tap_sum->defined()),
              "pad_value=0 with padding needs tap_sum");
  return conv_packed(packed, x.size(1), weight, zero_pad ? tap_sum : c10::nullopt, c_out, kh, kw, sh, sw, ph, pw,
                     true, Epilogue{}, isa);
}

// The binary conv with its epilogue. Its input is `x` (packed here) or `packed_input` (a padded buffer of
// `in_channels` channels packed earlier, e.g. by the previous conv); with `pack_next` the output is also packed
// for the next binary conv (threshold `next_threshold`, padding `next_pad_*`) and returned second (else None).
std::tuple<at::Tensor, at::Tensor> binary_conv(
    const c10::optional<at::Tensor>& x, const c10::optional<at::Tensor>& threshold, const at::Tensor& weight,
    const c10::optional<at::Tensor>& tap_sum, int64_t c_out, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
    int64_t ph, int64_t pw, double pad_value, const at::Tensor& scale, const c10::optional<at::Tensor>& bias,
    const c10::optional<at::Tensor>& bn_scale, const c10::optional<at::Tensor>& bn_shift,
    const c10::optional<at::Tensor>& residual, const c10::optional<at::Tensor>& act_in,
    const c10::optional<at::Tensor>& act_slope, const c10::optional<at::Tensor>& act_out, c10::string_view isa_arg,
    const c10::optional<at::Tensor>& packed_input, int64_t in_channels, bool pack_next,
    const c10::optional<at::Tensor>& next_threshold, int64_t next_pad_h, int64_t next_pad_w,
    double next_pad_value, bool out_nchw, bool relu) {
  const Isa isa = parse_isa(isa_arg);
  const bool has_x = x.has_value() && x->defined(), has_packed = packed_input.has_value() && packed_input->defined();
  TORCH_CHECK(has_x != has_packed, "binary_conv takes either x or packed_input");
  at::Tensor packed;
  int64_t c_in = in_channels;
  if (has_x) {
    packed = pack_padded(*x, threshold, ph, pw, pad_value, isa_arg);
    c_in = x->size(1);
  } else {
    TORCH_CHECK(c_in > 0, "packed_input needs in_channels (the channels it packs)");
    check_pad_value(pad_value);
    packed = *packed_input;
    TORCH_CHECK(packed.dim() == 4 && packed.size(1) > 2 * ph && packed.size(2) > 2 * pw,
                "packed_input must be a padded [N, H + 2 pad_h, W + 2 pad_w, words] buffer, got ", packed.sizes());
  }
  const bool zero_pad = pad_value == 0.0;
  TORCH_CHECK(!(zero_pad && (ph || pw)) || (tap_sum.has_value() && tap_sum->defined()),
              "pad_value=0 with padding needs tap_sum");
  Epilogue ep;
  ep.scale = per_channel(scale, c_out, "scale");
  ep.bias = per_channel(bias, c_out, "bias");
  ep.bn_scale = per_channel(bn_scale, c_out, "bn_scale");
  ep.bn_shift = per_channel(bn_shift, c_out, "bn_shift");
  if (residual.has_value() && residual->defined()) ep.residual = *residual;
  ep.act_in = per_channel(act_in, c_out, "act_in");
  ep.act_slope = per_channel(act_slope, c_out, "act_slope");
  ep.act_out = per_channel(act_out, c_out, "act_out");
  ep.relu = relu;
  NextPack next;
  next.on = pack_next;
  if (next_threshold.has_value()) next.threshold = *next_threshold;
  next.ph = next_pad_h;
  next.pw = next_pad_w;
  next.pad_value = next_pad_value;
  at::Tensor packed_next;  // without pack_next: an empty int64 tensor (an operator returns defined tensors)
  at::Tensor out = conv_packed(packed, c_in, weight, zero_pad ? tap_sum : c10::nullopt, c_out, kh, kw, sh, sw, ph,
                               pw, false, ep, isa, next, &packed_next, out_nchw);
  if (!packed_next.defined()) packed_next = at::empty({0}, out.options().dtype(at::kLong));
  return {out, packed_next};
}

// RoIAlign (avg) of every RoI from its own level of `feats` (any strides; channels-last is read fastest), threaded
// over RoIs; [K, C, out_h, out_w] contiguous, equal to mmcv's CPU RoIAlign of each RoI on its level.
at::Tensor roi_align_levels(at::TensorList feats, at::ArrayRef<double> spatial_scales,
                            const at::Tensor& rois, const at::Tensor& level, int64_t out_h, int64_t out_w,
                            int64_t sampling_ratio, bool aligned) {
  TORCH_CHECK(!feats.empty(), "roi_align_levels needs at least one feature level");
  TORCH_CHECK(feats.size() == spatial_scales.size(), "got ", feats.size(), " feature levels and ",
              spatial_scales.size(), " spatial scales");
  TORCH_CHECK(out_h >= 1 && out_w >= 1, "output size must be >= 1, got ", out_h, "x", out_w);
  TORCH_CHECK(sampling_ratio >= 0, "sampling_ratio must be >= 0 (0: adaptive), got ", sampling_ratio);
  const int64_t n = feats[0].size(0), c = feats[0].size(1);
  std::vector<RoIAlignLevel> levels;
  for (size_t i = 0; i < feats.size(); ++i) {
    const at::Tensor& f = feats[i];
    check_float_nchw(f, "feature level");
    TORCH_CHECK(f.size(0) == n && f.size(1) == c, "feature level ", i, " has shape ", f.sizes(),
                "; level 0 has batch ", n, " and ", c, " channels");
    levels.push_back(RoIAlignLevel{f.data_ptr<float>(), f.stride(0), f.stride(1), f.stride(2), f.stride(3),
                                   f.size(2), f.size(3), static_cast<float>(spatial_scales[i])});
  }
  TORCH_CHECK(rois.device().is_cpu() && rois.scalar_type() == at::kFloat && rois.dim() == 2 && rois.size(1) == 5,
              "rois must be a float32 CPU [K, 5] tensor (batch index, x1, y1, x2, y2), got ", rois.sizes());
  TORCH_CHECK(level.scalar_type() == at::kLong && level.dim() == 1 && level.size(0) == rois.size(0),
              "level must be an int64 [K] tensor, one level per RoI");
  const at::Tensor r = rois.contiguous(), lv = level.contiguous();
  const int64_t k = r.size(0);
  const float* rp = r.data_ptr<float>();
  const int64_t* lp = lv.data_ptr<int64_t>();
  for (int64_t i = 0; i < k; ++i) {
    TORCH_CHECK(lp[i] >= 0 && lp[i] < static_cast<int64_t>(levels.size()), "RoI ", i, " has level ", lp[i],
                "; there are ", levels.size(), " levels");
    const int b = static_cast<int>(rp[i * 5]);
    TORCH_CHECK(b >= 0 && b < n, "RoI ", i, " has batch index ", rp[i * 5], "; the batch has ", n, " images");
    if (aligned) {
      const float s = levels[lp[i]].spatial_scale;
      TORCH_CHECK((rp[i * 5 + 3] * s - 0.5f) - (rp[i * 5 + 1] * s - 0.5f) >= 0 &&
                      (rp[i * 5 + 4] * s - 0.5f) - (rp[i * 5 + 2] * s - 0.5f) >= 0,
                  "RoI ", i, " has x2 < x1 or y2 < y1 (aligned RoIAlign needs a non-negative size)");
    }
  }
  at::Tensor out = at::empty({k, c, out_h, out_w}, feats[0].options());
  RoIAlignArgs a{levels.data(), static_cast<int64_t>(levels.size()), rp, lp, c, out_h, out_w, sampling_ratio,
                 aligned, out.data_ptr<float>()};
  at::parallel_for(0, k, 4, [&](int64_t b, int64_t e) {
    std::vector<float> scratch(c);
    roi_align_range(a, b, e, scratch.data());
  });
  return out;
}

// Max pooling (any input strides) into a channels-last output, optionally of relu(BN(x)) (a ResNet stem's BN and
// ReLU, see max_pool.h); values equal torch's max_pool2d (no dilation, floor mode) of the same.
at::Tensor max_pool2d_channels_last(const at::Tensor& x, int64_t kh, int64_t kw, int64_t sy, int64_t sx, int64_t ph,
                                    int64_t pw, const c10::optional<at::Tensor>& bn_scale,
                                    const c10::optional<at::Tensor>& bn_shift, bool relu,
                                    c10::string_view isa_arg) {
  check_float_nchw(x, "input");
  const Isa isa = parse_isa(isa_arg);
  TORCH_CHECK(kh >= 1 && kw >= 1 && sy >= 1 && sx >= 1, "kernel size and stride must be >= 1");
  TORCH_CHECK(ph >= 0 && pw >= 0 && 2 * ph <= kh && 2 * pw <= kw,
              "padding must be >= 0 and at most half the kernel size, got ", ph, "x", pw);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t ho = (h + 2 * ph - kh) / sy + 1, wo = (w + 2 * pw - kw) / sx + 1;
  TORCH_CHECK(ho >= 1 && wo >= 1, "input ", h, "x", w, " is smaller than the pooling window");
  TORCH_CHECK(bn_scale.has_value() == bn_shift.has_value(), "the BN needs both bn_scale and bn_shift");
  const at::Tensor scale = per_channel(bn_scale, c, "bn_scale"), shift = per_channel(bn_shift, c, "bn_shift");
  at::Tensor out = at::empty({n, c, ho, wo}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  MaxPoolArgs a{x.data_ptr<float>(), x.stride(0), x.stride(1), x.stride(2), x.stride(3), n, c, h, w, kh, kw, sy,
                sx, ph, pw, ho, wo, scale.defined() ? scale.data_ptr<float>() : nullptr,
                shift.defined() ? shift.data_ptr<float>() : nullptr, relu, false, out.data_ptr<float>()};
  if (relu && shift.defined()) {  // relu(max) = max(relu) when no BN output can be -0: no bn_shift is -0
    const float* sp = shift.data_ptr<float>();
    bool negative_zero = false;
    for (int64_t i = 0; i < c; ++i) negative_zero = negative_zero || (sp[i] == 0.0f && std::signbit(sp[i]));
    a.relu = negative_zero;
    a.relu_after = !negative_zero;
  }
  at::parallel_for(0, n * ho, 1, [&](int64_t b, int64_t e) {
    std::vector<float> tmp(wo);
    max_pool_rows(isa, a, b, e, tmp.data());
  });
  return out;
}

}  // namespace
}  // namespace rebnn

// The schemas (defaults as the Python callers use them); every operator is functional: new outputs, no aliasing.
TORCH_LIBRARY(rebnn, m) {
  m.def("pack_padded(Tensor x, Tensor? threshold, int pad_h, int pad_w, float pad_value, str isa='auto') -> Tensor");
  m.def("conv_counts(Tensor x, Tensor? threshold, Tensor weight, Tensor? tap_sum, int out_channels, int kh, int kw, "
        "int stride_h, int stride_w, int pad_h, int pad_w, float pad_value, str isa='auto') -> Tensor");
  m.def("binary_conv(Tensor? x, Tensor? threshold, Tensor weight, Tensor? tap_sum, int out_channels, int kh, int kw, "
        "int stride_h, int stride_w, int pad_h, int pad_w, float pad_value, Tensor scale, Tensor? bias=None, "
        "Tensor? bn_scale=None, Tensor? bn_shift=None, Tensor? residual=None, Tensor? act_in=None, "
        "Tensor? act_slope=None, Tensor? act_out=None, str isa='auto', Tensor? packed_input=None, "
        "int in_channels=0, bool pack_next=False, Tensor? next_threshold=None, int next_pad_h=0, int next_pad_w=0, "
        "float next_pad_value=0., bool out_nchw=False, bool relu=False) -> (Tensor, Tensor)");
  m.def("max_pool2d_channels_last(Tensor x, int kh, int kw, int stride_h, int stride_w, int pad_h, int pad_w, "
        "Tensor? bn_scale=None, Tensor? bn_shift=None, bool relu=False, str isa='auto') -> Tensor");
  m.def("roi_align_levels(Tensor[] feats, float[] spatial_scales, Tensor rois, Tensor level, int out_h, int out_w, "
        "int sampling_ratio, bool aligned) -> Tensor");
}

TORCH_LIBRARY_IMPL(rebnn, CPU, m) {
  m.impl("pack_padded", TORCH_FN(rebnn::pack_padded));
  m.impl("conv_counts", TORCH_FN(rebnn::conv_counts));
  m.impl("binary_conv", TORCH_FN(rebnn::binary_conv));
  m.impl("max_pool2d_channels_last", TORCH_FN(rebnn::max_pool2d_channels_last));
  m.impl("roi_align_levels", TORCH_FN(rebnn::roi_align_levels));
}
