// CUDA direction grid in two launches: the projections of the (anchor, direction) pairs the
// requested rows touch (one thread per pair, summed in the same order as on the CPU), then one
// thread per output element, so consecutive threads write consecutive addresses of a row.
#include "chunk_position.cuh"
#include "grid_stride.cuh"
#include "kernels.h"

namespace latentsweep::cuda {
namespace {

template <typename T>
__global__ void projection_kernel(DirectionGrid<T> grid, int64_t first_pair, int64_t num_pairs,
                                  double* projections) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < num_pairs;
       i += stride) {
    const int64_t pair = first_pair + i;
    projections[i] = direction_projection(grid, pair / grid.num_dims, pair % grid.num_dims);
  }
}

template <typename T, typename Index>
__global__ void direction_kernel(DirectionGrid<T> grid, ChunkPosition position, int64_t first_pair,
                                 const double* projections, Index total) {
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index t = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    Index r, column;
    const GridIndex index = locate(position, t, r, column);
    const int64_t d = static_cast<int64_t>(column);
    const int64_t pair = index.anchor * grid.num_dims + index.dim;
    const T u = grid.directions[index.dim * grid.latent_dim + d];
    const T x = grid.anchors[index.anchor * grid.latent_dim + d];
    const T orthogonal = orthogonal_part(x, projections[pair - first_pair], u);
    grid.out[t] = direction_code(orthogonal, direction_value(grid, index), u);
  }
}

template <typename T>
void launch(const DirectionGrid<T>& grid, double* projections, cudaStream_t stream) {
  const int64_t total = grid.count * grid.latent_dim;
  if (total == 0) return;
  const int64_t first_pair = grid.start / grid.num_steps;
  const int64_t num_pairs = traversals_touched(grid.start, grid.count, grid.num_steps);
  projection_kernel<T><<<grid_stride_blocks(num_pairs), kThreads, 0, stream>>>(grid, first_pair, num_pairs,
                                                                        projections);
  const ChunkPosition position = chunk_position(grid.start, grid.num_dims, grid.num_steps, grid.latent_dim);
  if (chunk_fits_32_bits(total, grid.num_dims, grid.num_steps)) {
    direction_kernel<T, uint32_t><<<grid_stride_blocks(total), kThreads, 0, stream>>>(
        grid, position, first_pair, projections, static_cast<uint32_t>(total));
  } else {
    direction_kernel<T, uint64_t><<<grid_stride_blocks(total), kThreads, 0, stream>>>(
        grid, position, first_pair, projections, static_cast<uint64_t>(total));
  }
}

}  // namespace

int64_t direction_projection_count(int64_t start, int64_t count, int64_t num_steps) {
  return traversals_touched(start, count, num_steps);
}

void launch_direction_codes(const DirectionGrid<float>& grid, double* projections,
                            cudaStream_t stream) {
  launch(grid, projections, stream);
}
void launch_direction_codes(const DirectionGrid<double>& grid, double* projections,
                            cudaStream_t stream) {
  launch(grid, projections, stream);
}

}  // namespace latentsweep::cuda
