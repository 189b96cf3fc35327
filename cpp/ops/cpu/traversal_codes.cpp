// CPU registration of latentsweep::traversal_codes: rows split across threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../traversal_codes.h"
#include "traversal_codes_kernel.h"

namespace latentsweep {
namespace {

void traversal_kernel_cpu(const at::Tensor& anchors, const at::Tensor& dims,
                          const at::Tensor& values, int64_t start, int64_t rows, at::Tensor& out) {
  const at::Tensor anchors_c = anchors.contiguous();
  const at::Tensor dims_c = dims.contiguous();
  const at::Tensor grid_values = values_as_grid(anchors, dims, values);
  // Rows of ~64 values or more are memory bound: ~4k rows per task keeps threads busy.
  const int64_t grain = std::max<int64_t>(1, 262144 / std::max<int64_t>(anchors.size(1), 1));
  dispatch_word(anchors.scalar_type(), [&]<typename Word>() {
    const auto grid = make_traversal_grid<Word>(anchors_c, dims_c, grid_values, out, start, rows);
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      cpu::traversal_rows(grid, begin, end);
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, CPU, m) {
  m.impl("traversal_codes_into", &traversal_codes_into_with<DataChecks::kScan, &traversal_kernel_cpu>);
  m.impl("_traversal_codes_into_trusted",
         &traversal_codes_into_with<DataChecks::kSkip, &traversal_kernel_cpu>);
}

}  // namespace latentsweep
