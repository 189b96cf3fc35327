// The CUDA kernels of the streaming sweep statistics, on raw pointers (no torch headers, so CI
// compiles them with plain nvcc). They do the CPU kernel's operations in the CPU kernel's order
// (latentsweep/statistics_layout.h), so a chunk's statistics have the same bits on both devices.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace latentsweep::cuda {

// One chunk: grid rows [start, start + rows), covering traversals [start / S, (start + rows - 1) / S].
// T: float or double, the statistics' precision. All pointers on the chunk's device.
template <typename T>
struct StatisticsChunk {
  const T* outputs;         // [rows, features]
  const T* previous;        // [features]: grid row start - 1 (read only when start is inside a traversal)
  const T* anchor_outputs;  // [A, features]
  const double* inv_range;  // [A, K]: 1 / |values[a, k, S-1] - values[a, k, 0]| or 0
  const T* slope_in;        // [features]: the running slope of the traversal the chunk starts inside
  double* sensitivity_sum;  // [n, features], added to: traversal t's row (t - sums_first_traversal) % K
  double* dim_effect_sum;   // [K], added to
  // scratch and results
  T* slopes;                // [traversals_touched(start, rows, S), features]: each traversal's slope at its last row in the chunk
  double* effect_partial;   // [feature_blocks, rows]
  double* row_mean;         // [rows]
  T* effect;                // [rows]
  int64_t rows, features, start, num_dims, num_steps;
  int64_t sums_first_traversal;  // the unit's first traversal (<= start / num_steps)
};

void launch_statistics(const StatisticsChunk<float>& chunk, cudaStream_t stream);
void launch_statistics(const StatisticsChunk<double>& chunk, cudaStream_t stream);

}  // namespace latentsweep::cuda
