// CUDA registration of latentsweep::sample and sample_prior_.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../sample.h"
#include "device_guard.h"
#include "kernels.h"

namespace latentsweep {
namespace {

struct FillOnCuda {
  c10::DeviceIndex device;
  at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) const {
    return at::empty(sizes, options);
  }
  template <typename T>
  void operator()(const SampleProblem<T>& problem) const {
    cuda::launch_sample(problem, c10::cuda::getCurrentCUDAStream(device).stream());
    const char* error = cuda::last_launch_error();
    TORCH_CHECK(error == nullptr, "latentsweep.sample: CUDA launch failed: ", error);
  }
};

at::Tensor sample_cuda(const at::Tensor& mu, const at::Tensor& logvar, int64_t n, int64_t seed,
                       int64_t row_offset, int64_t sample_offset) {
  const auto guard = guard_if_cuda(mu);  // (logvar alone on CUDA: the checks say so)
  return sample_with(mu, logvar, n, seed, row_offset, sample_offset,
                     FillOnCuda{mu.device().index()});
}

void sample_prior_cuda(at::Tensor& self, int64_t seed, int64_t offset) {
  const c10::cuda::CUDAGuard guard(self.device());
  sample_prior_with(self, seed, offset, FillOnCuda{self.device().index()});
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, CUDA, m) {
  m.impl("sample", &sample_cuda);
  m.impl("sample_prior_", &sample_prior_cuda);
}

}  // namespace latentsweep
