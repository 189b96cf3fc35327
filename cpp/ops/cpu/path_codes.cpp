// CPU registration of latentsweep::_path_codes_into_trusted: rows split across threads; each
// element depends on its own row only, so the split does not change a bit.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../path_codes.h"
#include "path_codes_kernel.h"

namespace latentsweep {
namespace {

void path_kernel_cpu(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                     const at::Tensor& divisors, int64_t first, int64_t count, at::Tensor& out) {
  // As direction_codes: ~256k values per task keeps threads busy on memory-bound rows.
  const int64_t grain = std::max<int64_t>(1, 262144 / std::max<int64_t>(start.size(1), 1));
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "latentsweep::_path_codes_into_trusted", [&] {
    const auto grid = make_path_grid<scalar_t>(start, end, weights, divisors, first, count, out);
    at::parallel_for(0, count, grain, [&](int64_t begin, int64_t stop) { cpu::path_rows(grid, begin, stop); });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, CPU, m) {
  m.impl("_path_codes_into_trusted", &path_codes_into_with<&path_kernel_cpu>);
}

}  // namespace latentsweep
