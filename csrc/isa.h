// The instruction sets the kernels are compiled for, written once: per-function target attributes (never a global
// -march), so one binary holds the AVX-512, AVX2 and portable paths and cpu_dispatch.cpp picks one at run time.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#define REBNN_X86 1
#include <immintrin.h>
#endif

// AVX-512 with VPOPCNTDQ (and FMA for the epilogue); AVX2 with POPCNT, BMI2 and FMA. cpu_supports() checks
// exactly these features before a path is chosen.
#define REBNN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,fma")))
#define REBNN_AVX2 __attribute__((target("avx2,popcnt,bmi2,fma")))
#define REBNN_INLINE inline __attribute__((always_inline))
