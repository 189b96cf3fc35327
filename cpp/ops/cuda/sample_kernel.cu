// CUDA sampling: one thread per Philox block of one item; the eight threads of a block group
// write 32 consecutive dims (four coalesced runs of eight). Same per-element code as the CPU.
#include "grid_stride.cuh"
#include "kernels.h"

namespace latentsweep::cuda {
namespace {

template <typename T>
__global__ void sample_kernel(SampleProblem<T> problem, int64_t blocks_per_item, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const int64_t item = t / blocks_per_item;
    const uint32_t block = static_cast<uint32_t>(t - item * blocks_per_item);
    sample_block(problem, item, item_counter(problem, item), block);
  }
}

template <typename T>
void launch(const SampleProblem<T>& problem, cudaStream_t stream) {
  const int64_t per_item = blocks_per_item(problem.latent_size);
  const int64_t total = problem.rows * problem.samples * per_item;
  if (total == 0) return;
  sample_kernel<T><<<grid_stride_blocks(total), kThreads, 0, stream>>>(problem, per_item, total);
}

}  // namespace

void launch_sample(const SampleProblem<float>& problem, cudaStream_t stream) {
  launch(problem, stream);
}
void launch_sample(const SampleProblem<double>& problem, cudaStream_t stream) {
  launch(problem, stream);
}

const char* last_launch_error() {
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

}  // namespace latentsweep::cuda
