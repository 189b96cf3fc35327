// The body of the CPU statistics kernel (see statistics_kernel.h), included by the baseline
// and the AVX2 translation units so both compile the same loops with their own flags.
#pragma once

#include <algorithm>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "statistics_kernel.h"

namespace latentsweep::cpu {
// Internal linkage: the baseline and the AVX2 units each keep their own compiled copy (an
// inline function left out of line would be one weak symbol, the linker's pick for both).
namespace {

// 32 bytes of T as one vector (GCC/Clang vector extension: one AVX2 register in the AVX2 unit,
// two SSE registers in the baseline one): kWidth<T> values, 8 floats or 4 doubles. A row's
// kAccumulators accumulators are kParts<T> such vectors (float 1, double 2): as one 64-byte
// vector, double's accumulators were kept in memory and moved through general registers (the
// float64 kernel took 4x float32's time per row instead of 2x). The row loops below are
// written with these because the auto-vectoriser, given them as scalars, vectorised the wrong
// loop (2.5x slower). The sign bit is cleared through an integer view of the same width.
template <typename T>
struct LaneTypes;
template <>
struct LaneTypes<float> {
  typedef float Lanes __attribute__((vector_size(32)));
  typedef int32_t Bits __attribute__((vector_size(32)));
  static constexpr int32_t kMagnitude = 0x7fffffff;
};
template <>
struct LaneTypes<double> {
  typedef double Lanes __attribute__((vector_size(32)));
  typedef int64_t Bits __attribute__((vector_size(32)));
  static constexpr int64_t kMagnitude = 0x7fffffffffffffffLL;
};
template <typename T>
using Lanes = typename LaneTypes<T>::Lanes;
template <typename T>
constexpr int kWidth = 32 / sizeof(T);
template <typename T>
constexpr int kParts = kAccumulators / kWidth<T>;
static_assert(kParts<float> * kWidth<float> == kAccumulators && kParts<double> * kWidth<double> == kAccumulators);

template <typename T>
inline Lanes<T> load_lanes(const T* p) {
  Lanes<T> v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
inline void store_lanes(T* p, const Lanes<T>& v) { __builtin_memcpy(p, &v, sizeof v); }
template <typename T>
inline Lanes<T> abs_lanes(const Lanes<T>& v) {
  using Bits = typename LaneTypes<T>::Bits;
  return reinterpret_cast<Lanes<T>>(reinterpret_cast<Bits>(v) & LaneTypes<T>::kMagnitude);
}

// A row's effect: its fixed-order partial sums, added in double.
template <typename T>
inline double sum_partials(const T (&partial)[kAccumulators]) {
  double sum = 0;
  for (int l = 0; l < kAccumulators; ++l) sum += partial[l];
  return sum;
}

// A traversal's slope, weighted, joins the float64 total of its dim.
template <typename T>
inline void add_weighted_slope(const StatisticsChunk<T>& c, int64_t traversal, int64_t f0, int64_t width,
                               const T* __restrict slope) {
  const double weight = c.inv_range[traversal];  // [A, K] flat: traversal a * K + k
  double* __restrict sens = c.sensitivity_sum + (traversal - c.sums_first_traversal) % c.num_dims * c.features + f0;
  for (int64_t g = 0; g < width; ++g) sens[g] += static_cast<double>(slope[g]) * weight;
}

// At a traversal's last step: its slope is added (or kept, see kept_slopes); the slope restarts.
template <typename T>
inline void complete_traversal(const StatisticsChunk<T>& c, const GridIndex& index, int64_t f0, int64_t width,
                               T* __restrict slope) {
  const int64_t traversal = index.anchor * c.num_dims + index.dim;
  if (c.kept_slopes != nullptr) {
    T* __restrict kept = c.kept_slopes + (traversal - c.start / c.num_steps) * c.features + f0;
    for (int64_t g = 0; g < width; ++g) kept[g] = slope[g];
  } else {
    add_weighted_slope(c, traversal, f0, width, slope);
  }
  for (int64_t g = 0; g < width; ++g) slope[g] = 0;
}

// The kept slopes of `count` traversals into the sensitivity in grid order (see
// add_kept_traversals in statistics_kernel.h).
template <typename T>
inline void add_kept_traversals_body(const StatisticsChunk<T>& c, int64_t count) {
  const int64_t first = c.start / c.num_steps;
  for (int64_t j = 0; j < count; ++j) add_weighted_slope(c, first + j, 0, c.features, c.kept_slopes + j * c.features);
}

// The same sum for a row's accumulators held in vector registers, accumulator p * kWidth + l
// being lane l of part p (no trip through memory).
template <typename T>
inline double sum_lanes(const Lanes<T> (&parts)[kParts<T>]) {
  double sum = 0;
  for (int p = 0; p < kParts<T>; ++p) {
    for (int l = 0; l < kWidth<T>; ++l) sum += static_cast<double>(parts[p][l]);
  }
  return sum;
}

// sum_lanes of four rows at once, into effect[0..3]: the same additions in the same order (lane
// 0 to 7, in double, from 0), one vector lane per row. The four rows' accumulators are transposed
// first (lane l of each side by side), so the 32 conversions and additions are 8 of each on 4-wide
// vectors: as 32 scalar ones with their lane extractions, they took ~40% of the kernel's time
// (float32, 784 features: 70 -> 59 ns per row on one thread).
inline void sum_lanes_of_four_rows(const Lanes<float> (&sums)[4][kParts<float>], double* __restrict effect) {
#if defined(__AVX__)
  const __m256 a = sums[0][0], b = sums[1][0], c = sums[2][0], d = sums[3][0];
  const __m256 ab_low = _mm256_unpacklo_ps(a, b);   // [a0 b0 a1 b1 | a4 b4 a5 b5]
  const __m256 ab_high = _mm256_unpackhi_ps(a, b);  // [a2 b2 a3 b3 | a6 b6 a7 b7]
  const __m256 cd_low = _mm256_unpacklo_ps(c, d);
  const __m256 cd_high = _mm256_unpackhi_ps(c, d);
  // lanes l and l + 4 of the four rows: [a_l b_l c_l d_l | a_l+4 b_l+4 c_l+4 d_l+4]
  const __m256 lanes[4] = {_mm256_shuffle_ps(ab_low, cd_low, 0x44), _mm256_shuffle_ps(ab_low, cd_low, 0xee),
                           _mm256_shuffle_ps(ab_high, cd_high, 0x44), _mm256_shuffle_ps(ab_high, cd_high, 0xee)};
  __m256d sum = _mm256_setzero_pd();
  for (int l = 0; l < 4; ++l) sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm256_castps256_ps128(lanes[l])));
  for (int l = 0; l < 4; ++l) sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm256_extractf128_ps(lanes[l], 1)));
  _mm256_storeu_pd(effect, sum);
#else
  for (int i = 0; i < 4; ++i) effect[i] = sum_lanes<float>(sums[i]);
#endif
}

// The prefetches below ask for each cache line of a row once.
constexpr int64_t kCacheLineBytes = 64;

// N consecutive rows y, y + stride, ... of one traversal (none its first step), feature blocks
// [first_block, last_block): each block's effect partial sum of each row into
// effect[block * partial_stride + i], and the rows' |dy| added to the slope. The loop is bound by
// loads: one pass over N rows reads each row once (also as the next row's predecessor) and x0 and
// the slope once for all, 3 + N loads per 8 features instead of 4N. The same operations in the
// same order as one row and one block at a time, so the same bits. All blocks in one call: a
// call per block (7 calls of 16 vector steps at 784 features), its accumulators zeroed on the
// stack, made the kernel ~15% slower (85-88 against 70-73 ns per row on one thread).
// Not inlined: as a function of restrict parameters the loop compiles to one clean version
// (inlined, GCC versioned it for aliasing).
// `ahead`: the N rows read next (or these rows again at the chunk's end), prefetched. A run's
// rows are N short streams (49 lines each at 784 floats), too short for the hardware prefetcher
// to follow, so a chunk that had left the caches was read at up to twice the cache-hot time: in
// an MLP sweep at batch 4096 or 8192 the statistics took 18 ms per 134k points without the
// prefetches and 12 with them (no change at 256).
template <int N, typename T>
__attribute__((noinline)) void rows_of_one_traversal(const T* __restrict before, const T* __restrict y,
                                                     int64_t stride, const T* __restrict x0,
                                                     T* __restrict slope, int64_t first_block,
                                                     int64_t last_block, int64_t features,
                                                     double* __restrict effect, int64_t partial_stride,
                                                     const T* ahead) {
  constexpr int64_t kLine = kCacheLineBytes / sizeof(T);
  for (int64_t block = first_block; block < last_block; ++block) {
    const int64_t block_end = std::min((block + 1) * kFeatureBlock, features);
    // Zeroed one by one: `= {}` on the array compiled to a rep stos per block.
    Lanes<T> sums[N][kParts<T>];
    for (int i = 0; i < N; ++i) {
      for (int p = 0; p < kParts<T>; ++p) sums[i][p] = Lanes<T>{};
    }
    int64_t f = block * kFeatureBlock;
    for (; f + kAccumulators <= block_end; f += kAccumulators) {
      if (f % kLine == 0) {
        for (int i = 0; i < N; ++i) __builtin_prefetch(ahead + i * stride + f, /*rw=*/0, /*locality=*/3);
      }
      for (int p = 0; p < kParts<T>; ++p) {
        const int64_t g = f + p * kWidth<T>;
        const Lanes<T> x = load_lanes(x0 + g);
        Lanes<T> previous = load_lanes(before + g), s = load_lanes(slope + g);
        for (int i = 0; i < N; ++i) {
          const Lanes<T> a = load_lanes(y + i * stride + g);
          sums[i][p] += abs_lanes<T>(a - x);
          s += abs_lanes<T>(a - previous);
          previous = a;
        }
        store_lanes(slope + g, s);
      }
    }
    double* __restrict block_effect = effect + block * partial_stride;
    if (f == block_end) {
      if constexpr (N == 4 && sizeof(T) == sizeof(float)) {  // (float64's time is elsewhere)
        sum_lanes_of_four_rows(sums, block_effect);
      } else {
        for (int i = 0; i < N; ++i) block_effect[i] = sum_lanes<T>(sums[i]);
      }
      continue;
    }
    // A short last block: its last features join the accumulators from lane 0 on.
    T partials[N][kAccumulators];
    for (int i = 0; i < N; ++i) {
      for (int p = 0; p < kParts<T>; ++p) store_lanes(partials[i] + p * kWidth<T>, sums[i][p]);
    }
    for (int l = 0; f < block_end; ++f, ++l) {
      T previous = before[f], s = slope[f];
      for (int i = 0; i < N; ++i) {
        const T a = y[i * stride + f];
        partials[i][l] += std::fabs(a - x0[f]);
        s += std::fabs(a - previous);
        previous = a;
      }
      slope[f] = s;
    }
    for (int i = 0; i < N; ++i) block_effect[i] = sum_partials(partials[i]);
  }
}

// Blocks [first_block, last_block) of every row of the chunk, run of rows by run of rows: the
// thread reads its rows front to back, once (as the hardware prefetches best).
template <typename T>
inline void statistics_blocks_body(const StatisticsChunk<T>& c, int64_t first_block, int64_t last_block) {
  GridIndex index = unravel_grid(c.start, c.num_dims, c.num_steps);
  const auto row = [&](int64_t r) { return r >= 0 ? c.outputs + r * c.features : c.previous; };
  for (int64_t r = 0; r < c.rows;) {
    const T* __restrict x0 = c.anchor_outputs + index.anchor * c.features;
    // rows left of this traversal in this chunk, when this row is not its first step
    const int64_t run = index.step > 0 ? std::min(c.num_steps - index.step, c.rows - r) : 0;
    const int n = run >= 4 ? 4 : run >= 2 ? 2 : 1;
    GridIndex last = index;  // the run's last row: the only one that can end its traversal
    for (int i = 1; i < n; ++i) advance_grid(last, c.num_dims, c.num_steps);
    const bool completes = run >= 1 && last.step == c.num_steps - 1;
    if (run >= 1) {
      const T* ahead = row(r + n <= c.rows - n ? r + n : r);  // within the chunk
      double* effect = c.effect_partial + r;
      if (n == 4) {
        rows_of_one_traversal<4, T>(row(r - 1), row(r), c.features, x0, c.slope, first_block, last_block, c.features,
                                    effect, c.partial_stride, ahead);
      } else if (n == 2) {
        rows_of_one_traversal<2, T>(row(r - 1), row(r), c.features, x0, c.slope, first_block, last_block, c.features,
                                    effect, c.partial_stride, ahead);
      } else {
        rows_of_one_traversal<1, T>(row(r - 1), row(r), c.features, x0, c.slope, first_block, last_block, c.features,
                                    effect, c.partial_stride, ahead);
      }
      if (completes) {
        const int64_t f0 = first_block * kFeatureBlock, f1 = std::min(last_block * kFeatureBlock, c.features);
        complete_traversal(c, last, f0, f1 - f0, c.slope + f0);
      }
    } else {
      // A traversal's first step: its effect only (no predecessor, no slope).
      for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t f0 = block * kFeatureBlock;
        const int64_t width = std::min(f0 + kFeatureBlock, c.features) - f0;
        const T* __restrict y = row(r) + f0;
        const T* __restrict x = x0 + f0;
        T partial[kAccumulators] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t f = 0;
        for (; f + kAccumulators <= width; f += kAccumulators) {
          for (int l = 0; l < kAccumulators; ++l) partial[l] += std::fabs(y[f + l] - x[f + l]);
        }
        for (int l = 0; f < width; ++f, ++l) partial[l] += std::fabs(y[f] - x[f]);
        c.effect_partial[block * c.partial_stride + r] = sum_partials(partial);
      }
    }
    const int advanced = run >= 1 ? n : 1;
    for (int i = 0; i < advanced; ++i) advance_grid(index, c.num_dims, c.num_steps);
    r += advanced;
  }
}

}  // namespace
}  // namespace latentsweep::cpu
