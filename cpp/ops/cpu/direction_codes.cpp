// CPU registration of latentsweep::direction_codes: rows split across threads. Each task
// recomputes the projection of its first pair itself, in the same order, so the split does
// not change a single bit.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../direction_codes.h"
#include "direction_codes_kernel.h"

namespace latentsweep {
namespace {

void direction_kernel_cpu(const at::Tensor& anchors, const at::Tensor& directions,
                          const at::Tensor& values, int64_t start, int64_t count, at::Tensor& out) {
  // Rows of ~64 values or more are memory bound: ~4k rows per task keeps threads busy.
  const int64_t grain = std::max<int64_t>(1, 262144 / std::max<int64_t>(anchors.size(1), 1));
  AT_DISPATCH_FLOATING_TYPES(anchors.scalar_type(), "latentsweep::direction_codes", [&] {
    const auto grid = make_direction_grid<scalar_t>(anchors, directions, values, out, start, count);
    at::parallel_for(0, count, grain, [&](int64_t begin, int64_t end) {
      cpu::direction_rows(grid, begin, end);
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, CPU, m) {
  m.impl("direction_codes_into", &direction_codes_into_with<DataChecks::kScan, &direction_kernel_cpu>);
  m.impl("_direction_codes_into_trusted",
         &direction_codes_into_with<DataChecks::kSkip, &direction_kernel_cpu>);
}

}  // namespace latentsweep
