// The body of the CPU statistics kernel (see statistics_kernel.h), included by the baseline
// and the AVX2 translation units so both compile the same loops with their own flags.
#pragma once

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

// Rows y and next (its successor, same traversal) of one feature block: their effect partial
// sums and both steps' |dy| added to the slope. Not inlined: as a function of restrict
// parameters the loop compiles to one clean version (inlined, GCC versioned it for aliasing).
__attribute__((noinline)) void two_rows(const float* __restrict before, const float* __restrict y,
                                               const float* __restrict next, const float* __restrict x0,
                                               float* __restrict slope, int64_t width,
                                               float (&partial)[kAccumulators],
                                               float (&partial_next)[kAccumulators]) {
  Lanes effect = {}, effect_next = {};
  int64_t f = 0;
  for (; f + kAccumulators <= width; f += kAccumulators) {
    const Lanes a = load_lanes(y + f), b = load_lanes(next + f), x = load_lanes(x0 + f);
    effect += abs_lanes(a - x);
    effect_next += abs_lanes(b - x);
    Lanes s = load_lanes(slope + f);
    s += abs_lanes(a - load_lanes(before + f));
    s += abs_lanes(b - a);
    store_lanes(slope + f, s);
  }
  store_lanes(partial, effect);
  store_lanes(partial_next, effect_next);
  for (int l = 0; f < width; ++f, ++l) {
    partial[l] += std::fabs(y[f] - x0[f]);
    partial_next[l] += std::fabs(next[f] - x0[f]);
    float s = slope[f];
    s += std::fabs(y[f] - before[f]);
    s += std::fabs(next[f] - y[f]);
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
    if (index.step > 0 && index.step + 1 < c.num_steps && r + 1 < c.rows) {
      // Two rows of one traversal, neither its first step: one pass over both. y is read once
      // as a row and once as the next row's predecessor, x0 and the slope once for both: the
      // loop is bound by loads, and this makes 5 per 8 features and 2 rows instead of 8. The
      // same operations in the same order as one row at a time, so the same bits.
      const float* __restrict before = row(r - 1);
      const float* __restrict y = row(r);
      const float* __restrict next = row(r + 1);
      float partial[kAccumulators], partial_next[kAccumulators];
      two_rows(before, y, next, x0, slope, width, partial, partial_next);
      c.effect_partial[block * c.rows + r] = sum_partials(partial);
      c.effect_partial[block * c.rows + r + 1] = sum_partials(partial_next);
      advance_grid(index, c.num_dims, c.num_steps);  // row r is not its traversal's last step
      if (index.step == c.num_steps - 1) complete_traversal(c, index, f0, width, slope);
      advance_grid(index, c.num_dims, c.num_steps);
      r += 2;
      continue;
    }
    const float* __restrict y = row(r);
    float partial[kAccumulators] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (index.step > 0) {  // one pass over y for both the effect and the slope
      const float* __restrict before = row(r - 1);
      int64_t f = 0;
      for (; f + kAccumulators <= width; f += kAccumulators) {
        for (int l = 0; l < kAccumulators; ++l) {
          partial[l] += std::fabs(y[f + l] - x0[f + l]);
          slope[f + l] += std::fabs(y[f + l] - before[f + l]);
        }
      }
      for (int l = 0; f < width; ++f, ++l) {
        partial[l] += std::fabs(y[f] - x0[f]);
        slope[f] += std::fabs(y[f] - before[f]);
      }
      if (index.step == c.num_steps - 1) complete_traversal(c, index, f0, width, slope);
    } else {
      int64_t f = 0;
      for (; f + kAccumulators <= width; f += kAccumulators) {
        for (int l = 0; l < kAccumulators; ++l) partial[l] += std::fabs(y[f + l] - x0[f + l]);
      }
      for (int l = 0; f < width; ++f, ++l) partial[l] += std::fabs(y[f] - x0[f]);
    }
    c.effect_partial[block * c.rows + r] = sum_partials(partial);
    advance_grid(index, c.num_dims, c.num_steps);
    ++r;
  }
}

}  // namespace
}  // namespace latentsweep::cpu
