// CUDA traversal grid: one thread per output element, so consecutive threads write
// consecutive addresses of a row; positions in 32-bit arithmetic where the chunk allows.
#include "chunk_position.cuh"
#include "grid_stride.cuh"
#include "kernels.h"

namespace latentsweep::cuda {
namespace {

template <typename Word, typename Index>
__global__ void traversal_kernel(TraversalGrid<Word> grid, ChunkPosition position, Index total) {
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index t = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    Index r, d;
    const GridIndex index = locate(position, t, r, d);
    grid.out[t] = static_cast<int64_t>(d) == grid.dims[index.dim]
                      ? grid_value(grid, index)
                      : grid.anchors[index.anchor * grid.latent_dim + static_cast<int64_t>(d)];
  }
}

template <typename Word>
void launch(const TraversalGrid<Word>& grid, cudaStream_t stream) {
  const int64_t total = grid.count * grid.latent_dim;
  if (total == 0) return;
  const int blocks = grid_stride_blocks(total);
  const ChunkPosition position = chunk_position(grid.start, grid.num_dims, grid.num_steps, grid.latent_dim);
  if (chunk_fits_32_bits(total, grid.num_dims, grid.num_steps)) {
    traversal_kernel<Word, uint32_t><<<blocks, kThreads, 0, stream>>>(grid, position, static_cast<uint32_t>(total));
  } else {
    traversal_kernel<Word, uint64_t><<<blocks, kThreads, 0, stream>>>(grid, position, static_cast<uint64_t>(total));
  }
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
