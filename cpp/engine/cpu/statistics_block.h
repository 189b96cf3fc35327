// The body of the CPU statistics kernel (see statistics_kernel.h), included by the baseline
// and the AVX2 translation units so both compile the same loops with their own flags.
#pragma once

#include "statistics_kernel.h"

namespace latentsweep::cpu {

inline void statistics_block_body(const StatisticsChunk& c, int64_t block) {
  const int64_t f0 = block * kFeatureBlock;
  const int64_t width = (f0 + kFeatureBlock < c.features ? f0 + kFeatureBlock : c.features) - f0;
  float* __restrict slope = c.slope + f0;
  GridIndex index = unravel_grid(c.start, c.num_dims, c.num_steps);
  for (int64_t r = 0; r < c.rows; ++r) {
    const float* __restrict y = c.outputs + r * c.features + f0;
    const float* __restrict x0 = c.anchor_outputs + index.anchor * c.features + f0;
    float partial[kAccumulators] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (index.step > 0) {  // one pass over y for both the effect and the slope
      const float* __restrict before = (r > 0 ? c.outputs + (r - 1) * c.features : c.previous) + f0;
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
      if (index.step == c.num_steps - 1) {  // the traversal is complete: add its slope
        const double weight = c.inv_range[index.anchor * c.num_dims + index.dim];
        double* __restrict sens = c.sensitivity_sum + index.dim * c.features + f0;
        for (int64_t g = 0; g < width; ++g) {
          sens[g] += static_cast<double>(slope[g]) * weight;
          slope[g] = 0;
        }
      }
    } else {
      int64_t f = 0;
      for (; f + kAccumulators <= width; f += kAccumulators) {
        for (int l = 0; l < kAccumulators; ++l) partial[l] += std::fabs(y[f + l] - x0[f + l]);
      }
      for (int l = 0; f < width; ++f, ++l) partial[l] += std::fabs(y[f] - x0[f]);
    }
    double sum = 0;
    for (int l = 0; l < kAccumulators; ++l) sum += partial[l];
    c.effect_partial[block * c.rows + r] = sum;
    advance_grid(index, c.num_dims, c.num_steps);
  }
}

}  // namespace latentsweep::cpu
