// The CPU kernel of the streaming sweep statistics, on raw pointers (no torch).
//
// For each output row g of the traversal grid (anchor a, dim k, step s) and feature f:
//   effect[g]  = mean_f |y[g, f] - x0[a, f]|
//   sens[k, f] += |y[g, f] - y[g - 1, f]| * inv_range[a, k]        (for s > 0)
// Features are processed in fixed blocks, rows in grid order within a block, and the partial
// sums of a row combined in block order, so the result does not depend on the number of
// threads nor on how rows are split into chunks.
#pragma once

#include <cmath>
#include <cstdint>

#include "latentsweep/traversal_grid.h"

namespace latentsweep::cpu {

constexpr int64_t kFeatureBlock = 256;  // features per parallel task
constexpr int kAccumulators = 8;        // fixed-order partial sums (vectorisable, deterministic)

struct StatisticsChunk {
  const float* outputs;       // [rows, features] of grid rows start .. start + rows
  const float* previous;      // [features]: row start - 1 (null when start is 0)
  const float* anchor_outputs;  // [A, features]
  const double* inv_range;    // [A, K]: 1 / |values[a, k, S-1] - values[a, k, 0]| or 0
  double* sensitivity_sum;    // [K, features]
  double* effect_partial;     // [blocks, rows]: per feature block, sum_f |y - x0|
  int64_t rows, features, start;
  int64_t num_dims, num_steps;
};

inline int64_t feature_blocks(int64_t features) {
  return (features + kFeatureBlock - 1) / kFeatureBlock;
}

// One feature block [block * kFeatureBlock, ...) for every row of the chunk.
inline void statistics_block(const StatisticsChunk& c, int64_t block) {
  const int64_t f0 = block * kFeatureBlock;
  const int64_t f1 = f0 + kFeatureBlock < c.features ? f0 + kFeatureBlock : c.features;
  GridIndex index = unravel_grid(c.start, c.num_dims, c.num_steps);
  for (int64_t r = 0; r < c.rows; ++r) {
    const float* y = c.outputs + r * c.features;
    const float* x0 = c.anchor_outputs + index.anchor * c.features;
    double partial[kAccumulators] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t f = f0;
    for (; f + kAccumulators <= f1; f += kAccumulators) {
      for (int l = 0; l < kAccumulators; ++l) partial[l] += std::fabs(double(y[f + l]) - double(x0[f + l]));
    }
    for (int l = 0; f < f1; ++f, ++l) partial[l] += std::fabs(double(y[f]) - double(x0[f]));
    double sum = 0;
    for (int l = 0; l < kAccumulators; ++l) sum += partial[l];
    c.effect_partial[block * c.rows + r] = sum;

    if (index.step > 0) {
      const float* before = r > 0 ? y - c.features : c.previous;
      const double weight = c.inv_range[index.anchor * c.num_dims + index.dim];
      double* sens = c.sensitivity_sum + index.dim * c.features;
      for (int64_t g = f0; g < f1; ++g) sens[g] += std::fabs(double(y[g]) - double(before[g])) * weight;
    }
    advance_grid(index, c.num_dims, c.num_steps);
  }
}

}  // namespace latentsweep::cpu
