// Shared by the CPU and CUDA registrations of latentsweep::_path_codes_into_trusted: the rows
// of an interpolation's P x 1 x S path grid (latentsweep.interpolate's PathWriter).
#pragma once

#include <ATen/core/Tensor.h>

#include "checks.h"
#include "latentsweep/path_grid.h"

namespace latentsweep {

inline constexpr const char* kPathCodesFn = "latentsweep.interpolate";

// The only checks of the op's arguments (ValueError / TypeError; see checks.h), run by every
// backend's kernel and the Meta kernel: start, end [P, D], weights [P, 2, S] (S >= 2),
// divisors [P], all float64 on one device; rows [first, first + count) inside the P * S rows;
// out a contiguous floating [count, D] on that device, sharing no memory with the inputs. No
// data scans: the PathWriter built the inputs from checked endpoints.
void check_path_arguments(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                          const at::Tensor& divisors, int64_t first, int64_t count,
                          const at::Tensor& out);

// A backend's kernel: start and end contiguous, out float32 or float64 [count, D] contiguous.
using PathKernel = void (*)(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                            const at::Tensor& divisors, int64_t first, int64_t count, at::Tensor& out);

// The op on a backend: checks the arguments and runs `kernel`. float16 and bfloat16 rows are
// written in float64 and rounded by torch's copy (double -> float -> half, as the Python writer
// rounded them), so every dtype's rows are today's bit for bit.
void run_path_codes(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                    const at::Tensor& divisors, int64_t first, int64_t count, at::Tensor& out,
                    PathKernel kernel);

template <PathKernel kernel>
void path_codes_into_with(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                          const at::Tensor& divisors, int64_t first, int64_t count, at::Tensor& out) {
  run_path_codes(start, end, weights, divisors, first, count, out, kernel);
}

template <typename T>
PathGrid<T> make_path_grid(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                           const at::Tensor& divisors, int64_t first, int64_t count, at::Tensor& out) {
  PathGrid<T> grid;
  grid.start = start.const_data_ptr<double>();
  grid.end = end.const_data_ptr<double>();
  grid.weights = weights.const_data_ptr<double>();
  grid.weight_stride_path = weights.stride(0);
  grid.weight_stride_pair = weights.stride(1);
  grid.weight_stride_step = weights.stride(2);
  grid.divisors = divisors.const_data_ptr<double>();
  grid.divisor_stride = divisors.stride(0);
  grid.out = out.data_ptr<T>();
  grid.num_paths = start.size(0);
  grid.num_steps = weights.size(2);
  grid.latent_dim = start.size(1);
  grid.first = first;
  grid.count = count;
  return grid;
}

}  // namespace latentsweep
