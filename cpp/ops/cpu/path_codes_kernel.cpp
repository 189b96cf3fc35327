// CPU path-grid rows: a row's weights and divisor are read once, then each element is two
// products, a sum and a quotient over contiguous memory, which the compiler vectorises.
#include "path_codes_kernel.h"

namespace latentsweep::cpu {
namespace {

template <typename T>
void rows(const PathGrid<T>& grid, int64_t begin, int64_t end) {
  const int64_t width = grid.latent_dim;
  int64_t path = (grid.first + begin) / grid.num_steps, step = (grid.first + begin) % grid.num_steps;
  for (int64_t r = begin; r < end; ++r) {
    const double* __restrict__ a = grid.start + path * width;
    const double* __restrict__ b = grid.end + path * width;
    T* __restrict__ row = grid.out + r * width;
    if (step == 0 || step == grid.num_steps - 1) {  // the endpoints, exactly
      const double* __restrict__ point = step == 0 ? a : b;
      for (int64_t d = 0; d < width; ++d) row[d] = static_cast<T>(point[d]);
    } else {
      const double* w = grid.weights + path * grid.weight_stride_path + step * grid.weight_stride_step;
      const double w0 = w[0], w1 = w[grid.weight_stride_pair];
      const double divisor = grid.divisors[path * grid.divisor_stride];
      for (int64_t d = 0; d < width; ++d) row[d] = static_cast<T>(path_code(a[d], b[d], w0, w1, divisor));
    }
    if (++step == grid.num_steps) {
      step = 0;
      ++path;
    }
  }
}

}  // namespace

void path_rows(const PathGrid<float>& grid, int64_t begin, int64_t end) { rows(grid, begin, end); }
void path_rows(const PathGrid<double>& grid, int64_t begin, int64_t end) { rows(grid, begin, end); }

}  // namespace latentsweep::cpu
