// Plain-C++ interface between the torch-facing ops (ops.cpp) and the ISA-specific kernels (packing.cpp,
// binary_conv.cpp). Kernel translation units include no torch header: they are compiled for the baseline ISA and
// only functions marked with a target attribute use AVX2 / AVX-512, so no inline torch/std code is ever emitted
// with instructions the CPU might lack.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rebnn {

enum class Isa : int { portable = 0, avx2 = 1, avx512 = 2 };

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// 64-bit words per packed pixel of `channels` channels (rebnn_det/deploy/packing.py: num_words)
inline int64_t words_for(int64_t channels) { return ceil_div(channels, 64); }

// Output of sign(x - threshold) packing: a padded channels-last buffer [N][H + 2 ph][W + 2 pw][words] of 64-bit
// words (bit c % 64 of word c / 64 is 1 where x_c - threshold_c < 0). Border pixels hold `pad_word[k]`.
struct PackArgs {
  const float* x;            // input [N, C, H, W] with arbitrary element strides
  int64_t sn, sc, sh, sw;    // strides of x (elements)
  const float* threshold;    // [C] or nullptr (sign(x))
  int64_t n, c, h, w;
  int64_t ph, pw;            // spatial padding added around the packed pixels
  int64_t words;             // ceil(C / 64)
  const uint64_t* pad_word;  // [words]: the word pattern of a padded pixel
  uint64_t* out;             // [N][H + 2ph][W + 2pw][words]
};

// Pack rows [row_begin, row_end) of the padded output (row = n * (H + 2ph) + padded y).
void pack_rows(Isa isa, const PackArgs& a, int64_t row_begin, int64_t row_end);

// Epilogue applied per output channel o to the exact integer count (sum over valid taps of C - 2 popcount), each
// step rounded once, in the order of the simulated model (ReBNNConv in eval mode -> BatchNorm -> + shortcut ->
// RPReLU):  y = scale[o] * count ; y = y + bias[o] ; y = fma(y, bn_scale[o], bn_shift[o]) (PyTorch's CPU eval
// BatchNorm) ; y = y + residual ; y = prelu(y - act_in[o], slope[o]) + act_out[o] ; y = relu(y)  (optional steps
// skipped when their pointers are null / relu is false). With `counts` set, the integer count itself is written instead.
struct ConvArgs {
  const uint64_t* act;       // packed padded input [N][Hp][Wp][words]
  int64_t n, hp, wp, words;
  const uint64_t* weight;    // [OB][T][8] with T = kh * kw * words, OB = ceil(C_out / 8), zero-padded channels
  const int64_t* tap_offset; // [T]: word offset of (ky, kx, k) from a pixel's first word
  int64_t c_in, c_out, kh, kw, sh, sw, ph, pw, h, w, ho, wo;
  const int32_t* tap_sum;    // [kh * kw][C_out]: sum_c b[o, tap, c] (= C - 2 popcount(w)); nullptr: no correction
  // epilogue
  const float* scale;        // [C_out]: alpha
  const float* bias;         // [C_out] (the conv's bias) or nullptr
  const float* bn_scale;     // [C_out] BatchNorm's weight / sqrt(var + eps), as torch computes it, or nullptr
  const float* bn_shift;     // [C_out] BatchNorm's bias - mean * bn_scale (torch's value); with bn_scale
  const float* residual;     // [N][Ho][Wo][res_channels] channels-last or nullptr; channel o adds
  int64_t res_channels;      //   residual[o % res_channels] (C_out = k * res_channels: a repeated shortcut)
  const float* act_in;       // RPReLU (all three or none)
  const float* act_slope;
  const float* act_out;
  bool relu;                 // then y = y < 0 ? 0 : y (torch.relu exactly: NaN and -0 kept)
  float* out;                // [N][Ho][Wo][C_out] channels-last, or [N][C_out][Ho][Wo] with out_nchw
  bool out_nchw;             // NCHW output (for a real conv reading it next: no layout copy)
  int32_t* counts;           // [N][Ho][Wo][C_out] channels-last (raw counts mode) or nullptr
  // Bitpacked output for a next binary conv that reads `out` (or nullptr): a PackArgs over `out` (x = out, its
  // channels-last strides, the next conv's threshold and padding). Each output row is packed as soon as its
  // epilogue has written it (still in cache), the border rows with the first and last row of each image.
  const PackArgs* pack_next;
};

// Compute output rows [row_begin, row_end) (row = n * Ho + oh). `scratch` holds Wo * OB * 8 int32, `pixel` C_out
// floats.
void conv_rows(Isa isa, const ConvArgs& a, int64_t row_begin, int64_t row_end, int32_t* scratch, float* pixel);

// CPU feature detection (cpu_dispatch.cpp).
bool cpu_supports(Isa isa);
Isa best_isa();
const char* isa_name(Isa isa);
std::vector<std::string> available_isas();  // the paths this CPU can run, best first

}  // namespace rebnn
