// The CUDA device an op's registration runs on.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>

#include <optional>

namespace latentsweep {

// `tensor`'s device when it is on CUDA, else none. The dispatcher picks the CUDA kernel when any
// argument is on CUDA (out= on the GPU, the anchors on the CPU): a CUDAGuard of a CPU tensor
// throws its own RuntimeError before the argument checks can name the mismatch.
inline c10::cuda::OptionalCUDAGuard guard_if_cuda(const at::Tensor& tensor) {
  return c10::cuda::OptionalCUDAGuard(tensor.is_cuda() ? std::optional<c10::Device>(tensor.device())
                                                       : std::nullopt);
}

}  // namespace latentsweep
