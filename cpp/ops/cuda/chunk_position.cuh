// Where element t of a chunk of grid rows lies: its row, its column and the row's grid index,
// from the chunk's first grid index by division of chunk-relative numbers. In uint32_t when the
// chunk allows (chunk_fits_32_bits): a 64-bit division is a long subroutine on a GPU, a 32-bit
// one a few instructions, and these kernels do three per element.
#pragma once

#include <cstdint>

#include "latentsweep/traversal_grid.h"

namespace latentsweep::cuda {

struct ChunkPosition {
  GridIndex first;  // of the chunk's row 0
  int64_t num_dims, num_steps, latent_dim;
};

inline ChunkPosition chunk_position(int64_t start, int64_t num_dims, int64_t num_steps, int64_t latent_dim) {
  return {unravel_grid(start, num_dims, num_steps), num_dims, num_steps, latent_dim};
}

// Every number a 32-bit kernel forms (t plus a grid-stride step, first.step + row, first.dim +
// traversals) stays below 2^32.
inline bool chunk_fits_32_bits(int64_t elements, int64_t num_dims, int64_t num_steps) {
  constexpr int64_t kLimit = int64_t{1} << 30;
  return elements < 2 * kLimit && num_dims < kLimit && num_steps < kLimit;
}

template <typename Index>
__host__ __device__ __forceinline__ GridIndex locate(const ChunkPosition& p, Index t, Index& row, Index& column) {
  const Index latent_dim = static_cast<Index>(p.latent_dim), num_steps = static_cast<Index>(p.num_steps),
              num_dims = static_cast<Index>(p.num_dims);
  row = t / latent_dim;
  column = t - row * latent_dim;
  Index step = static_cast<Index>(p.first.step) + row;
  const Index traversals = step / num_steps;
  step -= traversals * num_steps;
  Index dim = static_cast<Index>(p.first.dim) + traversals;
  const Index anchors = dim / num_dims;
  dim -= anchors * num_dims;
  return GridIndex{p.first.anchor + static_cast<int64_t>(anchors), static_cast<int64_t>(dim),
                   static_cast<int64_t>(step)};
}

}  // namespace latentsweep::cuda
