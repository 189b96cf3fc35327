// The direction grid, as raw pointers: A anchors x K directions x S steps in row-major order.
// Row g of the grid, with (a, k, s) = unravel(g, (A, K, S)) as for the traversal grid, is
//   anchors[a] + (values[a, k, s] - <anchors[a], u_k>) * u_k,   u_k = directions[k] (unit length):
// the anchor with its coordinate along u_k replaced by values[a, k, s].
//
// It is evaluated as (x_d - p * u_d) + v * u_d, not x_d + (v - p) * u_d: for a one-hot u_k the
// products are exact and x_j - x_j = 0, so the row is bit for bit the traversal grid's row.
// The projection p is summed in double in the order d = 0..D-1 on every backend, so results
// do not depend on the backend, the chunking or the number of threads; p and the orthogonal
// part stay in double, because p of float32 anchors near their largest value can exceed it
// (x = 3e38 in every column: p = 6.7e38 along the diagonal) while x_d - p * u_d does not.
#pragma once

#include <cstdint>

#include "host_device.h"
#include "traversal_grid.h"  // GridIndex, unravel_grid, advance_grid

namespace latentsweep {

template <typename T>  // float or double: storage and arithmetic type
struct DirectionGrid {
  const T* anchors;     // [A, D] contiguous
  const T* directions;  // [K, D] contiguous, rows of unit length
  const T* values;      // [A, K, S] with the strides below (0 where broadcast)
  int64_t value_stride_anchor, value_stride_dim, value_stride_step;
  T* out;  // [count, D] contiguous
  int64_t num_anchors, num_dims, num_steps, latent_dim;
  int64_t start, count;
};

// <anchors[a], directions[k]>: products of floats are exact in double, summed in a fixed order.
template <typename T>
LS_HD double direction_projection(const DirectionGrid<T>& grid, int64_t a, int64_t k) {
  const T* x = grid.anchors + a * grid.latent_dim;
  const T* u = grid.directions + k * grid.latent_dim;
  double sum = 0.0;
  for (int64_t d = 0; d < grid.latent_dim; ++d) sum += static_cast<double>(x[d]) * static_cast<double>(u[d]);
  return sum;
}

// Element d of the anchor without its component along u: x_d - p * u_d, rounded once.
template <typename T>
LS_HD T orthogonal_part(T x, double projection, T u) {
  return static_cast<T>(static_cast<double>(x) - projection * static_cast<double>(u));
}

// Element d of a grid row: the orthogonal part plus the new coordinate along u.
template <typename T>
LS_HD T direction_code(T orthogonal, T value, T u) {
  return orthogonal + value * u;
}

template <typename T>
LS_HD T direction_value(const DirectionGrid<T>& grid, const GridIndex& index) {
  return grid.values[index.anchor * grid.value_stride_anchor + index.dim * grid.value_stride_dim +
                     index.step * grid.value_stride_step];
}

}  // namespace latentsweep
