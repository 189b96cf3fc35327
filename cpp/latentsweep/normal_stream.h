// Where each normal draw of latentsweep comes from: eps(seed, row, sample, dim).
//
// The key is the 64-bit seed; the 128-bit counter packs (block, sample, row, stream), so every
// draw is a pure function of its coordinates. One Philox block yields four normals: block
// 8h + l, word q gives dim 32h + 8q + l. With that layout eight consecutive blocks (one SIMD
// vector or eight CUDA threads) produce 32 consecutive dims, each word a contiguous run of 8.
// Limits (checked by the ops, exported to Python as _C.MAX_*): row < 2^48, sample < 2^47,
// dim < 2^34.
#pragma once

#include <cstdint>

#include "host_device.h"
#include "normal.h"
#include "philox.h"

namespace latentsweep {

// Separate streams so prior draws never reuse the counters of posterior draws.
enum class NormalStream : uint32_t { kPosterior = 0, kPrior = 1 };

constexpr int64_t kMaxRowCounter = int64_t{1} << 48;
constexpr int64_t kMaxSampleCounter = int64_t{1} << 47;
constexpr int64_t kMaxDimCounter = int64_t{1} << 34;

constexpr int kDimsPerGroup = 32;  // dims covered by 8 consecutive blocks
constexpr int kBlocksPerGroup = 8;

LS_HD uint64_t block_of_dim(uint64_t dim) { return (dim >> 5) * 8 + (dim & 7); }
LS_HD int word_of_dim(uint64_t dim) { return static_cast<int>((dim >> 3) & 3); }
LS_HD uint64_t dim_of_block(uint64_t block, int word) {
  return (block >> 3) * 32 + static_cast<uint64_t>(word) * 8 + (block & 7);
}

// The (row, sample, stream) part of the counter: words 1..3.
struct NormalCounter {
  uint32_t sample_low, row_low, high;
};

LS_HD NormalCounter normal_counter(uint64_t row, uint64_t sample, NormalStream stream) {
  const uint32_t high = (static_cast<uint32_t>(row >> 32) & 0xffffu) |
                        ((static_cast<uint32_t>(sample >> 32) & 0x7fffu) << 16) |
                        (static_cast<uint32_t>(stream) << 31);
  return NormalCounter{static_cast<uint32_t>(sample), static_cast<uint32_t>(row), high};
}

// The raw Philox words of `block` (one value per lane of U) for one (row, sample).
template <typename U>
LS_HD void normal_block_bits(uint64_t seed, const NormalCounter& counter, U block, U bits[4]) {
  bits[0] = block;
  bits[1] = U(counter.sample_low);
  bits[2] = U(counter.row_low);
  bits[3] = U(counter.high);
  philox4x32_10(bits, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

template <typename U, typename F>
LS_HD void normal_block(uint64_t seed, const NormalCounter& counter, U block, F out[4]) {
  U bits[4];
  normal_block_bits(seed, counter, block, bits);
  box_muller4<U, F>(bits, out);
}

LS_HD void normal_block(uint64_t seed, const NormalCounter& counter, uint32_t block, double out[4]) {
  uint32_t bits[4];
  normal_block_bits(seed, counter, block, bits);
  box_muller4_f64(bits, out);
}

}  // namespace latentsweep
