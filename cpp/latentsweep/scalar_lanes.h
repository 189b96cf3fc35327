// The operations the generic per-element math (philox.h, normal.h) needs from a "lane" type,
// for plain scalars: uint32_t words and float values. The CPU kernels also instantiate the
// same math with 8-wide AVX2 lanes (cpp/ops/cpu/avx2_lanes.h); CUDA uses these scalars.
#pragma once

#include <cmath>
#include <cstdint>

#include "host_device.h"

namespace latentsweep {

LS_HD void mulhilo(uint32_t a, uint32_t multiplier, uint32_t& hi, uint32_t& lo) {
#if defined(__CUDA_ARCH__)
  hi = __umulhi(a, multiplier);
  lo = a * multiplier;
#else
  const uint64_t product = static_cast<uint64_t>(a) * multiplier;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
#endif
}

LS_HD float as_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  union { uint32_t u; float f; } pun{bits};
  return pun.f;
#endif
}

LS_HD uint32_t as_uint(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  union { float f; uint32_t u; } pun{value};
  return pun.u;
#endif
}

// The word read as a two's-complement int32, converted to float (round to nearest).
LS_HD float int_to_float(uint32_t word) { return static_cast<float>(static_cast<int32_t>(word)); }

// All ones where a < b as signed int32, else zero.
LS_HD uint32_t less_mask(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(a) < static_cast<int32_t>(b) ? 0xffffffffu : 0u;
}

// mask is all ones or all zeros.
LS_HD float select(uint32_t mask, float if_set, float if_clear) { return mask ? if_set : if_clear; }

LS_HD float sqrt_lanes(float x) { return sqrtf(x); }

// a * b + c with one rounding: the same bits on x86 (FMA3), CUDA and in libm.
LS_HD float fma_lanes(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return __builtin_fmaf(a, b, c);
#endif
}

}  // namespace latentsweep
