// The CPU kernel of the streaming sweep statistics, on raw pointers (no torch).
//
// For each output row g of the traversal grid (anchor a, dim k, step s) and feature f:
//   effect[g]    = mean_f |y[g, f] - x0[a, f]|
//   slope[f]    += |y[g, f] - y[g - 1, f]|               (for s > 0, in the outputs' precision)
//   and at the traversal's last step: sens[k, f] += slope[f] * inv_range[a, k] (in float64),
//   then slope = 0.
// Summing a traversal's steps in the outputs' precision (float32 or float64) and adding to the
// float64 total once per traversal keeps the inner loops vectorisable and the result accurate.
// Features go in fixed blocks, rows in grid order within a block, and a row's partial sums are
// combined in block order, so nothing depends on the number of threads or on how rows are chunked.
#pragma once

#include <cmath>
#include <cstdint>

#include "latentsweep/traversal_grid.h"

namespace latentsweep::cpu {

constexpr int64_t kFeatureBlock = 128;  // features per parallel task (small: threads stay balanced)
constexpr int kAccumulators = 8;        // fixed-order partial sums (vectorisable, deterministic)

// T: float or double, the outputs' (and the statistics') precision.
template <typename T>
struct StatisticsChunk {
  const T* outputs;             // [rows, features] of grid rows start .. start + rows
  const T* previous;            // [features]: row start - 1 (null when start is 0)
  const T* anchor_outputs;      // [A, features]
  const double* inv_range;      // [A, K]: 1 / |values[a, k, S-1] - values[a, k, 0]| or 0
  double* sensitivity_sum;      // [K, features]
  T* slope;                     // [features]: sum of |dy| over the current traversal so far
  double* effect_partial;       // [blocks, rows]: per feature block, sum_f |y - x0|
  int64_t rows, features, start;
  int64_t num_dims, num_steps;
};

inline int64_t feature_blocks(int64_t features) {
  return (features + kFeatureBlock - 1) / kFeatureBlock;
}

// The first feature block of task t when `tasks` threads share the blocks in contiguous runs of
// about features / tasks features each (task `tasks` gives the end). The blocks fix the bits (a
// block's sums do not depend on who computes it); this only balances the work: torch's even
// split by block count gave one of two threads 512 of 784 features (the last block is short).
inline int64_t first_block_of_task(int64_t t, int64_t tasks, int64_t features) {
  const int64_t blocks = feature_blocks(features);
  if (t >= tasks) return blocks;
  const int64_t block = (t * features / tasks + kFeatureBlock / 2) / kFeatureBlock;
  return block < blocks ? block : blocks;
}

// One feature block for every row of the chunk, compiled for the baseline instruction set
// (statistics_kernel.cpp) and for AVX2 (statistics_kernel_avx2.cpp) from one body
// (statistics_block.h); cpu::cpu_capability() picks one per process. Both do the same IEEE
// operations in the same order (no FMA contraction), so their results are bitwise equal.
void statistics_block(const StatisticsChunk<float>& c, int64_t block);
void statistics_block(const StatisticsChunk<double>& c, int64_t block);
#if LATENTSWEEP_HAVE_AVX2_KERNELS
void statistics_block_avx2(const StatisticsChunk<float>& c, int64_t block);
void statistics_block_avx2(const StatisticsChunk<double>& c, int64_t block);
#endif

}  // namespace latentsweep::cpu
