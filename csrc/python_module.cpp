// The Python extension rebnn_det._C: importing it loads the custom operators of ops.cpp (torch.ops.rebnn.*), and
// it answers which kernel paths this CPU runs. The C++ library for libtorch programs is the other sources without
// this file.
#include <torch/extension.h>

#include "rebnn_kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rebnn_det XNOR-popcount kernels (CPU); the operators are torch.ops.rebnn.*";
  m.def("available_isas", &rebnn::available_isas, "kernel paths this CPU can run, best first");
  m.def("best_isa", [] { return std::string(rebnn::isa_name(rebnn::best_isa())); });
}
