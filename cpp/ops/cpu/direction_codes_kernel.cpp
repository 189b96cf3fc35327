// CPU direction-grid rows: the orthogonal part of the anchor is computed once per (anchor,
// direction) run of S rows, then each row is one multiply-add per element over contiguous
// memory, which the compiler vectorises.
#include "direction_codes_kernel.h"

#include <cstddef>
#include <vector>

namespace latentsweep::cpu {
namespace {

template <typename T>
void rows(const DirectionGrid<T>& grid, int64_t begin, int64_t end) {
  const int64_t width = grid.latent_dim;
  std::vector<T> orthogonal(static_cast<std::size_t>(width));
  T* __restrict__ rest = orthogonal.data();
  GridIndex index = unravel_grid(grid.start + begin, grid.num_dims, grid.num_steps);
  for (int64_t r = begin; r < end; ++r) {
    const T* __restrict__ u = grid.directions + index.dim * width;
    if (r == begin || index.step == 0) {  // a new (anchor, direction) pair
      const double projection = direction_projection(grid, index.anchor, index.dim);
      const T* __restrict__ x = grid.anchors + index.anchor * width;
      for (int64_t d = 0; d < width; ++d) rest[d] = orthogonal_part(x[d], projection, u[d]);
    }
    const T value = direction_value(grid, index);
    T* __restrict__ row = grid.out + r * width;
    for (int64_t d = 0; d < width; ++d) row[d] = direction_code(rest[d], value, u[d]);
    advance_grid(index, grid.num_dims, grid.num_steps);
  }
}

}  // namespace

void direction_rows(const DirectionGrid<float>& grid, int64_t begin, int64_t end) {
  rows(grid, begin, end);
}
void direction_rows(const DirectionGrid<double>& grid, int64_t begin, int64_t end) {
  rows(grid, begin, end);
}

}  // namespace latentsweep::cpu
