// The body of the CPU statistics kernel (see statistics_kernel.h), included by the baseline
// and the AVX2 translation units so both compile the same loops with their own flags.
#pragma once

#include <algorithm>

#include "statistics_kernel.h"

namespace latentsweep::cpu {
// Internal linkage: the baseline and the AVX2 units each keep their own compiled copy (an
// inline function left out of line would be one weak symbol, the linker's pick for both).
namespace {

// kAccumulators floats as one value (GCC/Clang vector extension: one AVX2 register in the AVX2
// unit, two SSE registers in the baseline one). The two-row loop below is written with it
// because the auto-vectoriser, given that loop as scalars, vectorised the wrong loop (2.5x slower).
typedef float Lanes __attribute__((vector_size(kAccumulators * sizeof(float))));
typedef int32_t LaneBits __attribute__((vector_size(kAccumulators * sizeof(float))));

inline Lanes load_lanes(const float* p) {
  Lanes v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store_lanes(float* p, Lanes v) { __builtin_memcpy(p, &v, sizeof v); }
inline Lanes abs_lanes(Lanes v) { return reinterpret_cast<Lanes>(reinterpret_cast<LaneBits>(v) & 0x7fffffff); }

// A row's effect: its fixed-order partial sums, added in double.
inline double sum_partials(const float (&partial)[kAccumulators]) {
  double sum = 0;
  for (int l = 0; l < kAccumulators; ++l) sum += partial[l];
  return sum;
}

// At a traversal's last step: its slope, weighted, joins the float64 total; the slope restarts.
inline void complete_traversal(const StatisticsChunk& c, const GridIndex& index, int64_t f0, int64_t width,
                               float* __restrict slope) {
  const double weight = c.inv_range[index.anchor * c.num_dims + index.dim];
  double* __restrict sens = c.sensitivity_sum + index.dim * c.features + f0;
  for (int64_t g = 0; g < width; ++g) {
    sens[g] += static_cast<double>(slope[g]) * weight;
    slope[g] = 0;
  }
}

// N consecutive rows y, y + stride, ... of one traversal (none its first step) of one feature
// block: their effect partial sums, and their steps' |dy| added to the slope. The loop is bound
// by loads: one pass over N rows reads each row once (also as the next row's predecessor) and x0
// and the slope once for all, 3 + N loads per 8 features instead of 4N. The same operations in
// the same order as one row at a time, so the same bits. Not inlined: as a function of restrict
// parameters the loop compiles to one clean version (inlined, GCC versioned it for aliasing).
template <int N>
__attribute__((noinline)) void rows_of_one_traversal(const float* __restrict before, const float* __restrict y,
                                                     int64_t stride, const float* __restrict x0,
                                                     float* __restrict slope, int64_t width,
                                                     float (*__restrict partials)[kAccumulators]) {
  Lanes effect[N] = {};
  int64_t f = 0;
  for (; f + kAccumulators <= width; f += kAccumulators) {
    const Lanes x = load_lanes(x0 + f);
    Lanes previous = load_lanes(before + f), s = load_lanes(slope + f);
    for (int i = 0; i < N; ++i) {
      const Lanes a = load_lanes(y + i * stride + f);
      effect[i] += abs_lanes(a - x);
      s += abs_lanes(a - previous);
      previous = a;
    }
    store_lanes(slope + f, s);
  }
  for (int i = 0; i < N; ++i) store_lanes(partials[i], effect[i]);
  for (int l = 0; f < width; ++f, ++l) {
    float previous = before[f], s = slope[f];
    for (int i = 0; i < N; ++i) {
      const float a = y[i * stride + f];
      partials[i][l] += std::fabs(a - x0[f]);
      s += std::fabs(a - previous);
      previous = a;
    }
    slope[f] = s;
  }
}

inline void statistics_block_body(const StatisticsChunk& c, int64_t block) {
  const int64_t f0 = block * kFeatureBlock;
  const int64_t width = (f0 + kFeatureBlock < c.features ? f0 + kFeatureBlock : c.features) - f0;
  float* __restrict slope = c.slope + f0;
  GridIndex index = unravel_grid(c.start, c.num_dims, c.num_steps);
  const auto row = [&](int64_t r) { return (r >= 0 ? c.outputs + r * c.features : c.previous) + f0; };
  for (int64_t r = 0; r < c.rows;) {
    const float* __restrict x0 = c.anchor_outputs + index.anchor * c.features + f0;
    // rows left of this traversal in this chunk, when this row is not its first step
    const int64_t run = index.step > 0 ? std::min(c.num_steps - index.step, c.rows - r) : 0;
    if (run >= 1) {
      const int n = run >= 4 ? 4 : run >= 2 ? 2 : 1;
      float partials[4][kAccumulators];
      if (n == 4) {
        rows_of_one_traversal<4>(row(r - 1), row(r), c.features, x0, slope, width, partials);
      } else if (n == 2) {
        rows_of_one_traversal<2>(row(r - 1), row(r), c.features, x0, slope, width, partials);
      } else {
        rows_of_one_traversal<1>(row(r - 1), row(r), c.features, x0, slope, width, partials);
      }
      for (int i = 0; i < n; ++i) {
        c.effect_partial[block * c.rows + r + i] = sum_partials(partials[i]);
        // only the run's last row can be its traversal's last step
        if (i == n - 1 && index.step == c.num_steps - 1) complete_traversal(c, index, f0, width, slope);
        advance_grid(index, c.num_dims, c.num_steps);
      }
      r += n;
      continue;
    }
    // A traversal's first step: its effect only (no predecessor, no slope).
    const float* __restrict y = row(r);
    float partial[kAccumulators] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t f = 0;
    for (; f + kAccumulators <= width; f += kAccumulators) {
      for (int l = 0; l < kAccumulators; ++l) partial[l] += std::fabs(y[f + l] - x0[f + l]);
    }
    for (int l = 0; f < width; ++f, ++l) partial[l] += std::fabs(y[f] - x0[f]);
    c.effect_partial[block * c.rows + r] = sum_partials(partial);
    advance_grid(index, c.num_dims, c.num_steps);
    ++r;
  }
}

}  // namespace
}  // namespace latentsweep::cpu
