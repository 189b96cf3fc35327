// Shared by the CPU and CUDA registrations of latentsweep::direction_codes.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "checks.h"
#include "latentsweep/direction_grid.h"

namespace latentsweep {

inline constexpr const char* kDirectionCodesFn = "latentsweep.direction_codes";

// latentsweep::_direction_codes_into_trusted through the dispatcher (the CPU or CUDA kernel):
// rows of a grid whose directions the caller validated. Shapes are still checked; unit
// lengths are not scanned again.
void trusted_direction_codes_into(const at::Tensor& anchors, const at::Tensor& directions,
                                  const at::Tensor& values, int64_t start, int64_t count,
                                  at::Tensor& out);

// The only checks of direction_codes' arguments (ValueError / TypeError; see checks.h), run
// by every backend's kernel and the Meta kernels; `data` = kScan also checks that every
// direction has unit length (a scan of the K x D directions and a device sync), which the
// Meta kernels and the trusted op skip. Returns the number of rows to write (count, or to
// the end).
c10::SymInt check_direction_inputs(const at::Tensor& anchors, const at::Tensor& directions,
                                   const at::Tensor& values, int64_t start,
                                   std::optional<int64_t> count, DataChecks data);
void check_direction_output(const at::Tensor& anchors, const at::Tensor& directions,
                            const at::Tensor& values, const at::Tensor& out,
                            const c10::SymInt& count);

// A backend's kernel for float32 and float64 tensors: anchors and directions contiguous,
// values [A, K, S] (zero strides where broadcast).
using DirectionKernel = void (*)(const at::Tensor& anchors, const at::Tensor& directions,
                                 const at::Tensor& values, int64_t start, int64_t count,
                                 at::Tensor& out);

// direction_codes_into (kScan) and _direction_codes_into_trusted (kSkip) on a backend: checks
// the arguments and runs `kernel`. float16 and bfloat16 grids are computed in float32 (only
// the anchors and values the requested rows use are converted) and rounded once into out.
void run_direction_codes(const at::Tensor& anchors, const at::Tensor& directions,
                         const at::Tensor& values, int64_t start, std::optional<int64_t> count,
                         at::Tensor& out, DataChecks data, DirectionKernel kernel);

// The two registrations of a backend: `m.impl("direction_codes_into",
// &direction_codes_into_with<DataChecks::kScan, &my_kernel>)`, and kSkip for the trusted op.
template <DataChecks data, DirectionKernel kernel>
void direction_codes_into_with(const at::Tensor& anchors, const at::Tensor& directions,
                               const at::Tensor& values, int64_t start,
                               std::optional<int64_t> count, at::Tensor& out) {
  run_direction_codes(anchors, directions, values, start, count, out, data, kernel);
}

template <typename T>
DirectionGrid<T> make_direction_grid(const at::Tensor& anchors, const at::Tensor& directions,
                                     const at::Tensor& values, at::Tensor& out, int64_t start,
                                     int64_t count) {
  DirectionGrid<T> grid;
  grid.anchors = anchors.const_data_ptr<T>();
  grid.directions = directions.const_data_ptr<T>();
  grid.values = values.const_data_ptr<T>();
  grid.value_stride_anchor = values.stride(0);
  grid.value_stride_dim = values.stride(1);
  grid.value_stride_step = values.stride(2);
  grid.out = out.data_ptr<T>();
  grid.num_anchors = anchors.size(0);
  grid.latent_dim = anchors.size(1);
  grid.num_dims = directions.size(0);
  grid.num_steps = values.size(2);
  grid.start = start;
  grid.count = count;
  return grid;
}

}  // namespace latentsweep
