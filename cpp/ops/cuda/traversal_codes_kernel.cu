// CUDA traversal grid: one thread per output element, so consecutive threads write
// consecutive addresses of a row.
#include "kernels.h"

namespace latentsweep::cuda {
namespace {

constexpr int kThreads = 256;

template <typename Word>
__global__ void traversal_kernel(TraversalGrid<Word> grid, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const int64_t r = t / grid.latent_dim;
    const int64_t d = t - r * grid.latent_dim;
    const GridIndex index = unravel_grid(grid.start + r, grid.num_dims, grid.num_steps);
    grid.out[t] = d == grid.dims[index.dim] ? grid_value(grid, index)
                                            : grid.anchors[index.anchor * grid.latent_dim + d];
  }
}

template <typename Word>
void launch(const TraversalGrid<Word>& grid, cudaStream_t stream) {
  const int64_t total = grid.count * grid.latent_dim;
  if (total == 0) return;
  const int64_t wanted = (total + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(wanted < 65535 * 8 ? wanted : 65535 * 8);
  traversal_kernel<Word><<<blocks, kThreads, 0, stream>>>(grid, total);
}

}  // namespace

void launch_traversal_codes(const TraversalGrid<uint16_t>& grid, cudaStream_t stream) {
  launch(grid, stream);
}
void launch_traversal_codes(const TraversalGrid<uint32_t>& grid, cudaStream_t stream) {
  launch(grid, stream);
}
void launch_traversal_codes(const TraversalGrid<uint64_t>& grid, cudaStream_t stream) {
  launch(grid, stream);
}

}  // namespace latentsweep::cuda
