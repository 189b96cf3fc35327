// CUDA registration of latentsweep::traversal_codes.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../traversal_codes.h"
#include "kernels.h"

namespace latentsweep {
namespace {

void traversal_kernel_cuda(const at::Tensor& anchors, const at::Tensor& dims,
                           const at::Tensor& values, int64_t start, int64_t rows, at::Tensor& out) {
  const c10::cuda::CUDAGuard guard(anchors.device());
  const at::Tensor anchors_c = anchors.contiguous();
  const at::Tensor dims_c = dims.contiguous();
  const at::Tensor grid_values = values_as_grid(anchors, dims, values);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(anchors.device().index()).stream();
  dispatch_word(anchors.scalar_type(), [&]<typename Word>() {
    cuda::launch_traversal_codes(
        make_traversal_grid<Word>(anchors_c, dims_c, grid_values, out, start, rows), stream);
  });
  const char* error = cuda::last_launch_error();
  TORCH_CHECK(error == nullptr, "latentsweep.traversal_codes: CUDA launch failed: ", error);
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, CUDA, m) {
  m.impl("traversal_codes_into", &traversal_codes_into_with<DataChecks::kScan, &traversal_kernel_cuda>);
  m.impl("_traversal_codes_into_trusted",
         &traversal_codes_into_with<DataChecks::kSkip, &traversal_kernel_cuda>);
}

}  // namespace latentsweep
