// One sampling problem, as raw pointers: what both the CPU and the CUDA kernels receive.
//   out[i, j, d] = mu[i, d] + sd[i, d] * eps(seed, row_offset + i, sample_offset + j, d)
// for rows i < N, samples j < n and latents d < D (latent_size).
// or, when mu and sd are null, out[i, j, d] = eps(...) (standard normals for the prior).
#pragma once

#include <cstdint>

#include "host_device.h"
#include "normal_stream.h"

namespace latentsweep {

template <typename T>
struct SampleProblem {
  const T* mu;  // [rows, latent_size] contiguous, or null
  const T* sd;  // [rows, latent_size] contiguous, or null
  T* out;       // [rows, samples, latent_size] contiguous
  int64_t rows;         // N
  int64_t samples;      // n
  int64_t latent_size;  // D
  uint64_t seed;
  int64_t row_offset;
  int64_t sample_offset;
  NormalStream stream;
};

// An "item" is one (row, sample) pair: one output row of D values.
template <typename T>
LS_HD NormalCounter item_counter(const SampleProblem<T>& p, int64_t item) {
  const int64_t row = item / p.samples;
  const int64_t sample = item - row * p.samples;
  return normal_counter(static_cast<uint64_t>(p.row_offset + row),
                        static_cast<uint64_t>(p.sample_offset + sample), p.stream);
}

LS_HD void normal_block_scalar(uint64_t seed, const NormalCounter& counter, uint32_t block,
                               float out[4]) {
  normal_block<uint32_t, float>(seed, counter, block, out);
}
LS_HD void normal_block_scalar(uint64_t seed, const NormalCounter& counter, uint32_t block,
                               double out[4]) {
  normal_block(seed, counter, block, out);
}

// Computes one Philox block of one item and writes the (up to four) dims it covers.
template <typename T>
LS_HD void sample_block(const SampleProblem<T>& p, int64_t item, const NormalCounter& counter,
                        uint32_t block) {
  T eps[4];
  normal_block_scalar(p.seed, counter, block, eps);
  const int64_t row = item / p.samples;
  for (int word = 0; word < 4; ++word) {
    const int64_t d = static_cast<int64_t>(dim_of_block(block, word));
    if (d < p.latent_size) {
      T value = eps[word];
      if (p.mu != nullptr) value = p.mu[row * p.latent_size + d] + p.sd[row * p.latent_size + d] * value;
      p.out[item * p.latent_size + d] = value;
    }
  }
}

// Number of Philox blocks an item needs: whole groups of 8, fewer in a partial last group.
LS_HD int64_t blocks_per_item(int64_t latent_size) {
  const int64_t full_groups = latent_size / kDimsPerGroup;
  const int64_t tail = latent_size - full_groups * kDimsPerGroup;
  return full_groups * kBlocksPerGroup + (tail < kBlocksPerGroup ? tail : kBlocksPerGroup);
}

}  // namespace latentsweep
