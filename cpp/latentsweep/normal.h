// Standard normal draws from Philox output: Box–Muller on pairs of 32-bit words.
//
// The float32 path uses branch-free polynomial log/sin/cos (Cephes coefficients), written on
// generic lanes so the CPU runs it 8-wide with AVX2 and CUDA runs the very same arithmetic.
// The float64 path uses the same uniforms with libm, so a float64 draw equals the float32 draw
// to about float32 rounding.
#pragma once

#include <cmath>
#include <cstdint>

#include "host_device.h"
#include "scalar_lanes.h"

namespace latentsweep {

// Uniform in (0, 1]: 31 random bits, offset by half a step so that log() stays finite.
template <typename U, typename F>
LS_HD F uniform_open0(U bits) {
  return fma_lanes(int_to_float(bits >> 1), F(4.6566128730773926e-10f), F(2.3283064365386963e-10f));
}
LS_HD double uniform_open0_f64(uint32_t bits) {
  return static_cast<double>(bits >> 1) * 4.6566128730773926e-10 + 2.3283064365386963e-10;
}

// The largest |draw| either path gives: the radius at the smallest uniform, 2^-32, is
// sqrt(64 ln 2) = 6.66044..., rounded up past the float32 path's ulp errors. Bounds
// mu + sd * eps before a draw (exported as _C.MAX_ABS_NORMAL).
inline constexpr double kMaxAbsNormal = 6.661;

// Natural log for positive normal floats (Cephes logf, about 1 ulp).
template <typename U, typename F>
LS_HD F log_positive(F x) {
  const U bits = as_uint(x);
  const F exponent_raw = int_to_float(((bits >> 23) & U(0xffu)) - U(126u));
  const F m_raw = as_float((bits & U(0x807fffffu)) | U(0x3f000000u));  // x = m * 2^e, m in [0.5, 1)
  // m < sqrt(1/2), compared as bits: both are positive floats.
  const U below = less_mask(as_uint(m_raw), U(0x3f3504f3u));
  const F exponent = select(below, exponent_raw - F(1.0f), exponent_raw);
  const F m = select(below, m_raw + m_raw - F(1.0f), m_raw - F(1.0f));
  const F z = m * m;
  // Horner steps as fused multiply-adds: one rounding each, identical on every backend.
  F y = F(7.0376836292e-2f);
  y = fma_lanes(y, m, F(-1.1514610310e-1f));
  y = fma_lanes(y, m, F(1.1676998740e-1f));
  y = fma_lanes(y, m, F(-1.2420140846e-1f));
  y = fma_lanes(y, m, F(1.4249322787e-1f));
  y = fma_lanes(y, m, F(-1.6668057665e-1f));
  y = fma_lanes(y, m, F(2.0000714765e-1f));
  y = fma_lanes(y, m, F(-2.4999993993e-1f));
  y = fma_lanes(y, m, F(3.3333331174e-1f));
  y = y * m * z;
  y = fma_lanes(F(-2.12194440e-4f), exponent, y);
  y = fma_lanes(F(-0.5f), z, y);
  return fma_lanes(F(0.693359375f), exponent, m + y);
}

// The angle of a Box–Muller pair is 2*pi*bits/2^32. Reducing it in integers is exact: after a
// shift by an eighth of a turn, the top two bits are the quadrant and the rest an offset in
// [-pi/4, pi/4), where short polynomials are accurate.
template <typename U>
LS_HD void reduce_turn(U bits, U& quadrant, U& offset) {
  const U shifted = bits + U(1u << 29);
  quadrant = shifted >> 30;
  offset = (shifted & U(0x3fffffffu)) - U(1u << 29);  // signed, in units of 2^-32 turns
}

// Sign bits (bit 31) that rotate (cos x, sin x) by quadrant * pi/2, and a mask that swaps them.
template <typename U>
LS_HD void quadrant_rotation(U quadrant, U& swap, U& cos_sign, U& sin_sign) {
  swap = U(0u) - (quadrant & U(1u));                     // quadrants 1 and 3
  cos_sign = (((quadrant + U(1u)) >> 1) & U(1u)) << 31;  // quadrants 1 and 2
  sin_sign = (quadrant >> 1) << 31;                      // quadrants 2 and 3
}

template <typename U, typename F>
LS_HD void sincos_turn(U bits, F& cos_out, F& sin_out) {
  U quadrant, offset;
  reduce_turn(bits, quadrant, offset);
  const F x = int_to_float(offset) * F(1.4629180792671596e-9f);  // 2*pi / 2^32
  const F z = x * x;
  const F s = fma_lanes(
      fma_lanes(fma_lanes(F(-1.9515295891e-4f), z, F(8.3321608736e-3f)), z, F(-1.6666654611e-1f)) * z,
      x, x);
  const F c = fma_lanes(
      fma_lanes(fma_lanes(F(2.443315711809948e-5f), z, F(-1.388731625493765e-3f)), z,
                F(4.166664568298827e-2f)) * z,
      z, fma_lanes(F(-0.5f), z, F(1.0f)));
  U swap, cos_sign, sin_sign;
  quadrant_rotation(quadrant, swap, cos_sign, sin_sign);
  cos_out = as_float(as_uint(select(swap, s, c)) ^ cos_sign);
  sin_out = as_float(as_uint(select(swap, c, s)) ^ sin_sign);
}

LS_HD void sincos_turn_f64(uint32_t bits, double& cos_out, double& sin_out) {
  uint32_t quadrant, offset;
  reduce_turn(bits, quadrant, offset);
  const double x = static_cast<double>(static_cast<int32_t>(offset)) * 1.4629180792671596e-9;
  uint32_t swap, cos_sign, sin_sign;
  quadrant_rotation(quadrant, swap, cos_sign, sin_sign);
  const double c = cos(x), s = sin(x);
  cos_out = (swap ? s : c) * (cos_sign ? -1.0 : 1.0);
  sin_out = (swap ? c : s) * (sin_sign ? -1.0 : 1.0);
}

// Four standard normals from one Philox block: (x0, x1) and (x2, x3) are Box–Muller pairs,
// the first word of a pair giving the radius and the second the angle.
template <typename U, typename F>
LS_HD void box_muller4(const U bits[4], F out[4]) {
  const F r0 = sqrt_lanes(F(-2.0f) * log_positive<U, F>(uniform_open0<U, F>(bits[0])));
  const F r1 = sqrt_lanes(F(-2.0f) * log_positive<U, F>(uniform_open0<U, F>(bits[2])));
  F c0, s0, c1, s1;
  sincos_turn(bits[1], c0, s0);
  sincos_turn(bits[3], c1, s1);
  out[0] = r0 * c0;
  out[1] = r0 * s0;
  out[2] = r1 * c1;
  out[3] = r1 * s1;
}

LS_HD void box_muller4_f64(const uint32_t bits[4], double out[4]) {
  const double r0 = sqrt(-2.0 * log(uniform_open0_f64(bits[0])));
  const double r1 = sqrt(-2.0 * log(uniform_open0_f64(bits[2])));
  double c0, s0, c1, s1;
  sincos_turn_f64(bits[1], c0, s0);
  sincos_turn_f64(bits[3], c1, s1);
  out[0] = r0 * c0;
  out[1] = r0 * s0;
  out[2] = r1 * c1;
  out[3] = r1 * s1;
}

}  // namespace latentsweep
