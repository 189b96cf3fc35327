// Where the AVX2 sampling kernel spends its time: Philox4x32-10 alone, the Box–Muller
// transform alone (on fixed bits), and both, on the same lanes the library uses
// (cpp/ops/cpu/avx2_lanes.h), with nothing written to memory. No torch needed:
//
//   g++ -O3 -std=c++20 -mavx2 -mfma -ffp-contract=off -fno-math-errno -fno-trapping-math \
//       -Icpp -Icpp/ops/cpu benchmarks/sample_kernel_split.cpp -o /tmp/split && /tmp/split
//
// Prints nanoseconds per normal for each part (one thread).
#include <chrono>
#include <cstdio>

#include "avx2_lanes.h"
#include "latentsweep/normal.h"
#include "latentsweep/philox.h"

using namespace latentsweep;
using avx2::F32xK;
using avx2::U32xK;

namespace {

constexpr int kIterations = 1 << 20;  // x 32 lanes x 4 words = 134 M normals per part

template <typename Body>
double ns_per_normal(Body&& body) {
  const auto start = std::chrono::steady_clock::now();
  body();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return seconds * 1e9 / (double(kIterations) * avx2::kLanes * 4);
}

U32xK counter_lanes(uint32_t i) {
  U32xK v;
  for (int k = 0; k < avx2::kVectors; ++k) v.v[k] = _mm256_add_epi32(_mm256_set1_epi32(int(i * 32 + k * 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return v;
}

volatile float sink_f;
volatile uint32_t sink_u;

}  // namespace

int main() {
  const double philox = ns_per_normal([] {
    __m256i acc = _mm256_setzero_si256();
    for (uint32_t i = 0; i < kIterations; ++i) {
      U32xK bits[4] = {counter_lanes(i), U32xK(7u), U32xK(11u), U32xK(13u)};
      philox4x32_10(bits, 0x12345678u, 0x9abcdef0u);
      for (int w = 0; w < 4; ++w)
        for (int k = 0; k < avx2::kVectors; ++k) acc = _mm256_xor_si256(acc, bits[w].v[k]);
    }
    sink_u = uint32_t(_mm256_extract_epi32(acc, 0));
  });
  const double transform = ns_per_normal([] {
    __m256 acc = _mm256_setzero_ps();
    for (uint32_t i = 0; i < kIterations; ++i) {
      // Cheap distinct bits (a multiplicative hash) instead of Philox.
      U32xK base = counter_lanes(i);
      U32xK bits[4];
      for (int w = 0; w < 4; ++w) {
        bits[w] = base;
        for (int k = 0; k < avx2::kVectors; ++k)
          bits[w].v[k] = _mm256_mullo_epi32(base.v[k], _mm256_set1_epi32(int(0x9E3779B1u + 2 * w)));
      }
      F32xK eps[4];
      box_muller4<U32xK, F32xK>(bits, eps);
      for (int w = 0; w < 4; ++w)
        for (int k = 0; k < avx2::kVectors; ++k) acc = _mm256_add_ps(acc, eps[w].v[k]);
    }
    sink_f = _mm256_cvtss_f32(acc);
  });
  const double hash_only = ns_per_normal([] {
    __m256i acc = _mm256_setzero_si256();
    for (uint32_t i = 0; i < kIterations; ++i) {
      U32xK base = counter_lanes(i);
      for (int w = 0; w < 4; ++w)
        for (int k = 0; k < avx2::kVectors; ++k)
          acc = _mm256_xor_si256(acc, _mm256_mullo_epi32(base.v[k], _mm256_set1_epi32(int(0x9E3779B1u + 2 * w))));
    }
    sink_u = uint32_t(_mm256_extract_epi32(acc, 0));
  });
  const double both = ns_per_normal([] {
    __m256 acc = _mm256_setzero_ps();
    for (uint32_t i = 0; i < kIterations; ++i) {
      U32xK bits[4] = {counter_lanes(i), U32xK(7u), U32xK(11u), U32xK(13u)};
      philox4x32_10(bits, 0x12345678u, 0x9abcdef0u);
      F32xK eps[4];
      box_muller4<U32xK, F32xK>(bits, eps);
      for (int w = 0; w < 4; ++w)
        for (int k = 0; k < avx2::kVectors; ++k) acc = _mm256_add_ps(acc, eps[w].v[k]);
    }
    sink_f = _mm256_cvtss_f32(acc);
  });
  std::printf("ns per normal, one thread, no stores\n");
  std::printf("  Philox4x32-10 alone:              %.3f\n", philox);
  std::printf("  Box-Muller alone (minus its bits): %.3f\n", transform - hash_only);
  std::printf("  Philox + Box-Muller:               %.3f\n", both);
  return 0;
}
