// The interpolation's path grid, as raw pointers: P paths x S steps in row-major order (row
// g = p * S + s is step s of path p; the sweep's P x 1 x S grid). Element d of a row is
//   (w0[p, s] * start[p, d] + w1[p, s] * end[p, d]) / divisor[p],
// except steps 0 and S - 1, which are start[p] and end[p] exactly. The weights and divisors
// come from torch (interpolation.py's PathWriter: 1 - t, t and 1 for a straight line;
// sin((1 - t) theta), sin(t theta) and sin(theta) for an arc), so only + * / are left here, in
// double, in the order of paths.py's torch expressions: each product rounded, then the sum,
// then the quotient (x / 1 is x: a line's rows are (1 - t) a + t b, bit for bit). Compiled
// without FMA contraction (CPU -ffp-contract=off, CUDA --fmad=false), which would change them.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace latentsweep {

template <typename T>  // float or double: the rows' storage type (the arithmetic is double)
struct PathGrid {
  const double* start;  // [P, D] contiguous
  const double* end;    // [P, D] contiguous
  const double* weights;  // [P, 2, S] with the strides below (0 where broadcast)
  int64_t weight_stride_path, weight_stride_pair, weight_stride_step;
  const double* divisors;  // [P] with this stride (0 where broadcast)
  int64_t divisor_stride;
  T* out;  // [count, D] contiguous
  int64_t num_paths, num_steps, latent_dim;
  int64_t first, count;
};

// One element of an inner step: each product rounded, then the sum, then the quotient.
LS_HD double path_code(double a, double b, double w0, double w1, double divisor) {
  return (w0 * a + w1 * b) / divisor;
}

// Element d of step s of path p, in double (rounded once to T by the caller: double -> T as
// torch's copy does for float32 and float64).
template <typename T>
LS_HD double path_value(const PathGrid<T>& grid, int64_t p, int64_t s, int64_t d) {
  const double a = grid.start[p * grid.latent_dim + d], b = grid.end[p * grid.latent_dim + d];
  if (s == 0) return a;
  if (s == grid.num_steps - 1) return b;
  const double* w = grid.weights + p * grid.weight_stride_path + s * grid.weight_stride_step;
  return path_code(a, b, w[0], w[grid.weight_stride_pair], grid.divisors[p * grid.divisor_stride]);
}

}  // namespace latentsweep
