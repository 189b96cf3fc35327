// CPU traversal-grid rows on raw pointers: each row is a copy of its anchor with one column
// replaced. Pure data movement, so the element type is just an unsigned word of its size.
#pragma once

#include <cstdint>
#include <cstring>

#include "latentsweep/traversal_grid.h"

namespace latentsweep::cpu {

// Writes output rows [begin, end) (relative to grid.start).
template <typename Word>
void traversal_rows(const TraversalGrid<Word>& grid, int64_t begin, int64_t end) {
  const int64_t width = grid.latent_dim;
  GridIndex index = unravel_grid(grid.start + begin, grid.num_dims, grid.num_steps);
  for (int64_t r = begin; r < end; ++r) {
    Word* row = grid.out + r * width;
    std::memcpy(row, grid.anchors + index.anchor * width, sizeof(Word) * width);
    row[grid.dims[index.dim]] = grid_value(grid, index);
    advance_grid(index, grid.num_dims, grid.num_steps);
  }
}

}  // namespace latentsweep::cpu
