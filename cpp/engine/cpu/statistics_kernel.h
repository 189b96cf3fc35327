// The CPU kernel of the streaming sweep statistics, on raw pointers (no torch).
//
// For each output row g of the traversal grid (anchor a, dim k, step s) and feature f:
//   effect[g]    = mean_f |y[g, f] - x0[a, f]|
//   slope[f]    += |y[g, f] - y[g - 1, f]|               (for s > 0, in the outputs' precision)
//   and at the traversal's last step: sens[k, f] += slope[f] * inv_range[a, k] (in float64),
//   then slope = 0 (sens's rows from the unit's first traversal's latent: see sensitivity_sum).
// Summing a traversal's steps in the outputs' precision (float32 or float64) and adding to the
// float64 total once per traversal keeps the inner loops vectorisable and the result accurate.
// Features go in fixed blocks, rows in grid order within a block, and a row's partial sums are
// combined in block order, so nothing depends on the number of threads or on how rows are chunked.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "latentsweep/statistics_layout.h"
#include "latentsweep/traversal_grid.h"

namespace latentsweep::cpu {

// T: float or double, the outputs' (and the statistics') precision.
template <typename T>
struct StatisticsChunk {
  const T* outputs;             // [rows, features] of grid rows start .. start + rows
  const T* previous;            // [features]: row start - 1 (null when start is 0)
  const T* anchor_outputs;      // [A, features]
  const double* inv_range;      // [A, K]: 1 / |values[a, k, S-1] - values[a, k, 0]| or 0
  double* sensitivity_sum;      // [n, features]: traversal t's row (t - sums_first_traversal) % K
  T* slope;                     // [features]: sum of |dy| over the current traversal so far
  // Null: a completed traversal's weighted slope joins sensitivity_sum at once. Else (a row
  // range after the chunk's first, see row_ranges) its slope is kept here, row j for the range's
  // j-th traversal, and joins after the earlier ranges' (add_kept_traversals): grid order.
  T* kept_slopes;
  double* effect_partial;       // [blocks, partial_stride]: per feature block, sum_f |y - x0|
  int64_t partial_stride;
  int64_t rows, features, start;
  int64_t num_dims, num_steps;
  int64_t sums_first_traversal;  // the unit's first traversal (<= start / num_steps)
};

// A chunk shared by threads in row ranges: each thread reads whole rows, the rows its core's
// share of the decoder's last elementwise op wrote (torch splits those evenly, in order). Shared
// by feature blocks, each core read half of every row from the other core's cache, and the
// decoder's next writes there had to take the lines back: in an MLP sweep the statistics took
// up to 1.6x as long and the decoder's calls ~3% longer. Ranges after the first start at a
// traversal's first step, so no traversal's running slope crosses threads. Returns bounds
// {0, b1, ..., rows} (range i is [b_i, b_i+1)), or {0, rows} when the chunk holds too few
// traversals for `tasks` ranges of about equal length (a share of at least kTraversalsPerRange
// traversals' rows, so a range is off its share by at most a quarter).
constexpr int64_t kTraversalsPerRange = 4;
inline std::vector<int64_t> row_ranges(int64_t start, int64_t rows, int64_t num_steps, int64_t tasks) {
  std::vector<int64_t> bounds{0};
  if (tasks > 1 && rows >= kTraversalsPerRange * num_steps * tasks) {
    for (int64_t t = 1; t < tasks; ++t) {
      const int64_t target = t * rows / tasks, into = (start + target) % num_steps;
      bounds.push_back(2 * into <= num_steps ? target - into : target - into + num_steps);
    }
  }
  bounds.push_back(rows);
  return bounds;
}

// The kept slopes of `count` traversals (c.kept_slopes, from c.start, a traversal's first step)
// into c.sensitivity_sum in grid order, as complete_traversal would have added them.
// Compiled for both instruction sets like statistics_blocks below: with row ranges, half of a
// chunk's traversals join here (in the baseline build this was ~10% of the statistics' time).
void add_kept_traversals(const StatisticsChunk<float>& c, int64_t count);
void add_kept_traversals(const StatisticsChunk<double>& c, int64_t count);

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

// Feature blocks [first_block, last_block) of every row of the chunk, compiled for the baseline
// instruction set (statistics_kernel.cpp) and for AVX2 (statistics_kernel_avx2.cpp) from one body
// (statistics_block.h); cpu::cpu_capability() picks one per process. Both do the same IEEE
// operations in the same order (no FMA contraction), so their results are bitwise equal.
void statistics_blocks(const StatisticsChunk<float>& c, int64_t first_block, int64_t last_block);
void statistics_blocks(const StatisticsChunk<double>& c, int64_t first_block, int64_t last_block);
#if LATENTSWEEP_HAVE_AVX2_KERNELS
void statistics_blocks_avx2(const StatisticsChunk<float>& c, int64_t first_block, int64_t last_block);
void statistics_blocks_avx2(const StatisticsChunk<double>& c, int64_t first_block, int64_t last_block);
void add_kept_traversals_avx2(const StatisticsChunk<float>& c, int64_t count);
void add_kept_traversals_avx2(const StatisticsChunk<double>& c, int64_t count);
#endif

}  // namespace latentsweep::cpu
