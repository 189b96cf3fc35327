// Lane types for the generic per-element math (philox.h, normal.h) on AVX2: K vectors of
// eight 32-bit lanes, processed together. Philox and Box–Muller are long dependency chains;
// K independent vectors in flight hide their latency (K = 4 is 2.7x faster than K = 1 here).
//
// Only included by translation units compiled with -mavx2 (and no torch headers), chosen at
// run time when the CPU has AVX2. Every operation is exact integer or IEEE single arithmetic,
// so results equal the scalar lanes bit for bit (with -ffp-contract=off everywhere).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace latentsweep::avx2 {

constexpr int kVectors = 4;
constexpr int kLanes = 8 * kVectors;

#define LS_FOR_EACH_VECTOR _Pragma("GCC unroll 4") for (int i = 0; i < kVectors; ++i)

struct U32xK {
  __m256i v[kVectors];
  U32xK() = default;
  U32xK(uint32_t value) {
    LS_FOR_EACH_VECTOR v[i] = _mm256_set1_epi32(static_cast<int>(value));
  }
};

struct F32xK {
  __m256 v[kVectors];
  F32xK() = default;
  F32xK(float value) {
    LS_FOR_EACH_VECTOR v[i] = _mm256_set1_ps(value);
  }
};

#define LS_LANEWISE(Type, op, intrinsic)                        \
  inline Type operator op(const Type& a, const Type& b) {       \
    Type r;                                                     \
    LS_FOR_EACH_VECTOR r.v[i] = intrinsic(a.v[i], b.v[i]);      \
    return r;                                                   \
  }
LS_LANEWISE(U32xK, +, _mm256_add_epi32)
LS_LANEWISE(U32xK, -, _mm256_sub_epi32)
LS_LANEWISE(U32xK, ^, _mm256_xor_si256)
LS_LANEWISE(U32xK, &, _mm256_and_si256)
LS_LANEWISE(U32xK, |, _mm256_or_si256)
LS_LANEWISE(F32xK, +, _mm256_add_ps)
LS_LANEWISE(F32xK, -, _mm256_sub_ps)
LS_LANEWISE(F32xK, *, _mm256_mul_ps)
#undef LS_LANEWISE

inline U32xK operator>>(const U32xK& a, int n) {
  U32xK r;
  LS_FOR_EACH_VECTOR r.v[i] = _mm256_srl_epi32(a.v[i], _mm_cvtsi32_si128(n));
  return r;
}
inline U32xK operator<<(const U32xK& a, int n) {
  U32xK r;
  LS_FOR_EACH_VECTOR r.v[i] = _mm256_sll_epi32(a.v[i], _mm_cvtsi32_si128(n));
  return r;
}

// The 64-bit products of the even and the odd lanes, split back into high and low words.
// Shuffles rather than 64-bit shifts: on Zen 1 vector shifts share one pipe and were the
// bottleneck of Philox.
inline void mulhilo(const U32xK& a, uint32_t multiplier, U32xK& hi, U32xK& lo) {
  const __m256i m = _mm256_set1_epi32(static_cast<int>(multiplier));
  LS_FOR_EACH_VECTOR {
    const __m256i even = _mm256_mul_epu32(a.v[i], m);                               // lanes 0, 2, ..
    const __m256i odd = _mm256_mul_epu32(_mm256_shuffle_epi32(a.v[i], 0xf5), m);  // lanes 1, 3, ..
    lo.v[i] = _mm256_blend_epi32(even, _mm256_shuffle_epi32(odd, 0xa0), 0xaa);
    hi.v[i] = _mm256_blend_epi32(_mm256_shuffle_epi32(even, 0xf5), odd, 0xaa);
  }
}

inline F32xK as_float(const U32xK& bits) {
  F32xK r;
  LS_FOR_EACH_VECTOR r.v[i] = _mm256_castsi256_ps(bits.v[i]);
  return r;
}
inline U32xK as_uint(const F32xK& value) {
  U32xK r;
  LS_FOR_EACH_VECTOR r.v[i] = _mm256_castps_si256(value.v[i]);
  return r;
}
inline F32xK int_to_float(const U32xK& word) {
  F32xK r;
  LS_FOR_EACH_VECTOR r.v[i] = _mm256_cvtepi32_ps(word.v[i]);
  return r;
}
inline U32xK less_mask(const U32xK& a, const U32xK& b) {
  U32xK r;
  LS_FOR_EACH_VECTOR r.v[i] = _mm256_cmpgt_epi32(b.v[i], a.v[i]);
  return r;
}
inline F32xK select(const U32xK& mask, const F32xK& if_set, const F32xK& if_clear) {
  F32xK r;
  LS_FOR_EACH_VECTOR r.v[i] =
      _mm256_blendv_ps(if_clear.v[i], if_set.v[i], _mm256_castsi256_ps(mask.v[i]));
  return r;
}
inline F32xK sqrt_lanes(const F32xK& x) {
  F32xK r;
  LS_FOR_EACH_VECTOR r.v[i] = _mm256_sqrt_ps(x.v[i]);
  return r;
}

inline F32xK fma_lanes(const F32xK& a, const F32xK& b, const F32xK& c) {
  F32xK r;
  LS_FOR_EACH_VECTOR r.v[i] = _mm256_fmadd_ps(a.v[i], b.v[i], c.v[i]);
  return r;
}

#undef LS_FOR_EACH_VECTOR

}  // namespace latentsweep::avx2
