// CPU registration of latentsweep::sample and sample_prior_: items (one output row each) are
// split across threads with at::parallel_for; every draw depends only on its coordinates, so
// the split does not change a single bit.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../sample.h"
#include "capability.h"
#include "huge_pages.h"
#include "sample_kernel.h"

namespace latentsweep {
namespace {

struct FillOnCpu {
  at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) const {
    return cpu::empty_prefer_huge_pages(sizes, options);
  }

  template <typename T>
  void operator()(const SampleProblem<T>& problem) const {
    const int64_t items = problem.rows * problem.samples;
    // About 16k values per task: enough to amortise scheduling, small enough to balance.
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(problem.latent_size, 1));
    [[maybe_unused]] const bool avx2 = cpu::cpu_capability() == cpu::CpuCapability::kAvx2;
    at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
#if LATENTSWEEP_HAVE_AVX2_KERNELS
      if constexpr (std::is_same_v<T, float>) {
        if (avx2) return cpu::sample_items_avx2(problem, begin, end);
      }
#endif
      cpu::sample_items_generic(problem, begin, end);
    });
  }
};

at::Tensor sample_cpu(const at::Tensor& mu, const at::Tensor& logvar, int64_t n, int64_t seed,
                      int64_t row_offset, int64_t sample_offset) {
  return sample_with(mu, logvar, n, seed, row_offset, sample_offset, FillOnCpu{});
}

void sample_prior_cpu(at::Tensor& self, int64_t seed, int64_t offset) {
  sample_prior_with(self, seed, offset, FillOnCpu{});
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, CPU, m) {
  m.impl("sample", &sample_cpu);
  m.impl("sample_prior_", &sample_prior_cpu);
}

}  // namespace latentsweep
