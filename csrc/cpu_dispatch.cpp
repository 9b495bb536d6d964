// Run-time choice of the kernel ISA: the best path this CPU (and OS) can execute. The kernels for every ISA are
// always compiled (per-function target attributes); only the ones cpu_supports() admits are ever called.
#include <string>
#include <vector>

#include "isa.h"
#include "rebnn_kernels.h"

namespace rebnn {

bool cpu_supports(Isa isa) {
#ifdef REBNN_X86
  __builtin_cpu_init();
  switch (isa) {
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("fma");
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi2") &&
             __builtin_cpu_supports("fma");
    default:
      return true;
  }
#else
  return isa == Isa::portable;
#endif
}

Isa best_isa() {
  if (cpu_supports(Isa::avx512)) return Isa::avx512;
  if (cpu_supports(Isa::avx2)) return Isa::avx2;
  return Isa::portable;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "portable";
  }
}

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::portable})
    if (cpu_supports(isa)) out.emplace_back(isa_name(isa));
  return out;
}

}  // namespace rebnn
