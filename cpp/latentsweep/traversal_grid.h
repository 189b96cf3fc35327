// The traversal grid, as raw pointers: A anchors x K dims x S steps in row-major order.
// Row g of the grid is anchors[a] with column dims[k] set to values[a, k, s], where
// (a, k, s) = unravel(g, (A, K, S)). Kernels write rows [start, start + count) only.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace latentsweep {

template <typename Word>  // an unsigned integer of the element size: the kernels only move bits
struct TraversalGrid {
  const Word* anchors;  // [A, D] contiguous
  const int64_t* dims;  // [K]
  const Word* values;   // [A, K, S] with the strides below (0 where broadcast)
  int64_t value_stride_anchor, value_stride_dim, value_stride_step;
  Word* out;  // [count, D] contiguous
  int64_t num_anchors, num_dims, num_steps, latent_dim;
  int64_t start, count;
};

struct GridIndex {
  int64_t anchor, dim, step;
};

LS_HD GridIndex unravel_grid(int64_t g, int64_t num_dims, int64_t num_steps) {
  const int64_t step = g % num_steps;
  const int64_t rest = g / num_steps;
  return GridIndex{rest / num_dims, rest % num_dims, step};
}

// The number of traversals (runs of num_steps rows from row 0) that rows [start, start + count) touch.
LS_HD int64_t traversals_touched(int64_t start, int64_t count, int64_t num_steps) {
  return count == 0 ? 0 : (start + count - 1) / num_steps - start / num_steps + 1;
}

// Of those, the ones whose last step is among the rows: all but a last one the rows end inside.
LS_HD int64_t traversals_completed(int64_t start, int64_t count, int64_t num_steps) {
  const int64_t touched = traversals_touched(start, count, num_steps);
  return touched == 0 || (start + count) % num_steps == 0 ? touched : touched - 1;
}

// The anchors that grid rows [start, start + count) (count >= 1) come from, per_anchor rows
// each (K * S): [first, first + number). The ops hand their kernels those anchors only (a few
// rows of a huge or broadcast [A, D] copied all of it).
struct AnchorSpan {
  int64_t first, number;
};
LS_HD AnchorSpan anchors_of_rows(int64_t start, int64_t count, int64_t per_anchor) {
  const int64_t first = start / per_anchor;
  return AnchorSpan{first, (start + count - 1) / per_anchor - first + 1};
}

// Moves to the next grid row without divisions.
LS_HD void advance_grid(GridIndex& index, int64_t num_dims, int64_t num_steps) {
  if (++index.step == num_steps) {
    index.step = 0;
    if (++index.dim == num_dims) {
      index.dim = 0;
      ++index.anchor;
    }
  }
}

template <typename Word>
LS_HD Word grid_value(const TraversalGrid<Word>& grid, const GridIndex& index) {
  return grid.values[index.anchor * grid.value_stride_anchor + index.dim * grid.value_stride_dim +
                     index.step * grid.value_stride_step];
}

}  // namespace latentsweep
