// CUDA registration of latentsweep::direction_codes.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../direction_codes.h"
#include "device_guard.h"
#include "kernels.h"

namespace latentsweep {
namespace {

void direction_kernel_cuda(const at::Tensor& anchors, const at::Tensor& directions,
                           const at::Tensor& values, int64_t start, int64_t count,
                           at::Tensor& out) {
  const c10::cuda::CUDAGuard guard(anchors.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(anchors.device().index()).stream();
  const int64_t pairs = cuda::direction_projection_count(start, count, values.size(2));
  // Scratch on the current stream: the caching allocator keeps it alive until the kernels ran.
  at::Tensor projections = at::empty({pairs}, anchors.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(anchors.scalar_type(), "latentsweep::direction_codes", [&] {
    cuda::launch_direction_codes(
        make_direction_grid<scalar_t>(anchors, directions, values, out, start, count),
        projections.data_ptr<double>(), stream);
  });
  const char* error = cuda::last_launch_error();
  TORCH_CHECK(error == nullptr, "latentsweep::direction_codes: CUDA launch failed: ", error);
}

// The checks and the low-precision conversions run on the anchors' device too.
template <DataChecks data>
void direction_codes_into_cuda(const at::Tensor& anchors, const at::Tensor& directions,
                               const at::Tensor& values, int64_t start, std::optional<int64_t> count,
                               at::Tensor& out) {
  const auto guard = guard_if_cuda(anchors);
  run_direction_codes(anchors, directions, values, start, count, out, data, &direction_kernel_cuda);
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, CUDA, m) {
  m.impl("direction_codes_into", &direction_codes_into_cuda<DataChecks::kScan>);
  m.impl("_direction_codes_into_trusted", &direction_codes_into_cuda<DataChecks::kSkip>);
}

}  // namespace latentsweep
