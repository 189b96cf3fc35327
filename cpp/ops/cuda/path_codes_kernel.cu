// CUDA path grid: one thread per output element, so consecutive threads write consecutive
// addresses of a row. The index arithmetic is in uint32_t when the chunk allows (a 64-bit
// division is a long subroutine on a GPU).
#include "grid_stride.cuh"
#include "kernels.h"

namespace latentsweep::cuda {
namespace {

template <typename T, typename Index>
__global__ void path_kernel(PathGrid<T> grid, Index total) {
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  const Index latent_dim = static_cast<Index>(grid.latent_dim), num_steps = static_cast<Index>(grid.num_steps);
  const Index first_step = static_cast<Index>(grid.first % grid.num_steps);
  const int64_t first_path = grid.first / grid.num_steps;
  for (Index t = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    const Index row = t / latent_dim, d = t - row * latent_dim;
    const Index step = first_step + row, paths = step / num_steps;
    const int64_t p = first_path + static_cast<int64_t>(paths);
    grid.out[t] = static_cast<T>(path_value(grid, p, static_cast<int64_t>(step - paths * num_steps),
                                            static_cast<int64_t>(d)));
  }
}

template <typename T>
void launch(const PathGrid<T>& grid, cudaStream_t stream) {
  const int64_t total = grid.count * grid.latent_dim;
  if (total == 0) return;
  // Every number the 32-bit kernel forms (t plus a grid-stride step, first_step + row) stays below 2^32.
  constexpr int64_t kLimit = int64_t{1} << 31;
  if (total < kLimit && grid.num_steps < kLimit) {
    path_kernel<T, uint32_t><<<grid_stride_blocks(total), kThreads, 0, stream>>>(grid, static_cast<uint32_t>(total));
  } else {
    path_kernel<T, uint64_t><<<grid_stride_blocks(total), kThreads, 0, stream>>>(grid, static_cast<uint64_t>(total));
  }
}

}  // namespace

void launch_path_codes(const PathGrid<float>& grid, cudaStream_t stream) { launch(grid, stream); }
void launch_path_codes(const PathGrid<double>& grid, cudaStream_t stream) { launch(grid, stream); }

}  // namespace latentsweep::cuda
