// CUDA registration of latentsweep::_path_codes_into_trusted.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../path_codes.h"
#include "device_guard.h"
#include "kernels.h"

namespace latentsweep {
namespace {

void path_kernel_cuda(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                      const at::Tensor& divisors, int64_t first, int64_t count, at::Tensor& out) {
  const c10::cuda::CUDAGuard guard(start.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(start.device().index()).stream();
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "latentsweep::_path_codes_into_trusted", [&] {
    cuda::launch_path_codes(make_path_grid<scalar_t>(start, end, weights, divisors, first, count, out), stream);
  });
  const char* error = cuda::last_launch_error();
  TORCH_CHECK(error == nullptr, "latentsweep::_path_codes_into_trusted: CUDA launch failed: ", error);
}

// The checks and the 16-bit copy run on the endpoints' device too.
void path_codes_into_cuda(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                          const at::Tensor& divisors, int64_t first, int64_t count, at::Tensor& out) {
  const auto guard = guard_if_cuda(start);
  run_path_codes(start, end, weights, divisors, first, count, out, &path_kernel_cuda);
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, CUDA, m) {
  m.impl("_path_codes_into_trusted", &path_codes_into_cuda);
}

}  // namespace latentsweep
