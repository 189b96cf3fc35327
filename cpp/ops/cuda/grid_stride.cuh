// The launch shape of the ops' grid-stride kernels (one thread per item, each thread striding
// over more items past the block cap): 256 threads a block, at most 65535 x 8 blocks.
#pragma once

#include <cstdint>

namespace latentsweep::cuda {

constexpr int kThreads = 256;

inline int grid_stride_blocks(int64_t items) {
  const int64_t wanted = (items + kThreads - 1) / kThreads;
  return static_cast<int>(wanted < 65535 * 8 ? wanted : 65535 * 8);
}

}  // namespace latentsweep::cuda
