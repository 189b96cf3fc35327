// AVX2 sampling. A "job" is one full group of 32 consecutive dims of one item (eight Philox
// blocks: one vector, see normal_stream.h); kVectors jobs, from one item or several, run
// together and are stored with vector writes. The blocks of the dims past the last full group
// run kLanes at a time, one (item, block) per lane, and are stored one value at a time. Both
// compute the scalar path's bits. Compiled with -mavx2 -mfma -ffp-contract=off.
#include "avx2_lanes.h"
#include "sample_kernel.h"

namespace latentsweep::cpu {
namespace {

using avx2::F32xK;
using avx2::kLanes;
using avx2::kVectors;
using avx2::U32xK;

struct Job {
  int64_t item;
  int64_t row;
  int64_t group;
  NormalCounter counter;
};

// Always inlined with constant vector indices, so the lane state stays in registers.
template <bool kStream>
__attribute__((always_inline)) inline void run_jobs(const SampleProblem<float>& p,
                                                    const Job* jobs, int count) {
  const __m256i lane_offsets = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  U32xK bits[4];
#pragma GCC unroll 4
  for (int i = 0; i < kVectors; ++i) {
    const Job& job = jobs[i < count ? i : 0];  // unused vectors repeat the first job
    const NormalCounter& counter = job.counter;
    const auto first_block = static_cast<int>(job.group * kBlocksPerGroup);
    bits[0].v[i] = _mm256_add_epi32(_mm256_set1_epi32(first_block), lane_offsets);
    bits[1].v[i] = _mm256_set1_epi32(static_cast<int>(counter.sample_low));
    bits[2].v[i] = _mm256_set1_epi32(static_cast<int>(counter.row_low));
    bits[3].v[i] = _mm256_set1_epi32(static_cast<int>(counter.high));
  }
  philox4x32_10(bits, static_cast<uint32_t>(p.seed), static_cast<uint32_t>(p.seed >> 32));
  F32xK eps[4];
  box_muller4<U32xK, F32xK>(bits, eps);
#pragma GCC unroll 4
  for (int i = 0; i < kVectors; ++i) {
    if (i >= count) break;
    const int64_t row = jobs[i].row;
    const int64_t first_dim = jobs[i].group * kDimsPerGroup;
    float* out = p.out + jobs[i].item * p.latent_size + first_dim;
#pragma GCC unroll 4
    for (int word = 0; word < 4; ++word) {
      __m256 value = eps[word].v[i];
      if (p.mu != nullptr) {
        const int64_t at = row * p.latent_size + first_dim + 8 * word;
        value = _mm256_add_ps(_mm256_loadu_ps(p.mu + at),
                              _mm256_mul_ps(_mm256_loadu_ps(p.sd + at), value));
      }
      if constexpr (kStream) {
        _mm256_stream_ps(out + 8 * word, value);
      } else {
        _mm256_storeu_ps(out + 8 * word, value);
      }
    }
  }
}

// One Philox block past an item's last full group of dims.
struct TailJob {
  int64_t item;
  int64_t row;
  uint32_t block;
  NormalCounter counter;
};

// The tail blocks of up to kLanes (item, block) pairs, each lane with its own counter: one block
// at a time on the scalar path took 8-30 ns a value where D is small (D = 4: 4 blocks an item,
// one of each block's four normals used), against 0.5 for whole groups.
__attribute__((always_inline)) inline void run_tail_jobs(const SampleProblem<float>& p, const TailJob* jobs,
                                                         int count) {
  alignas(32) uint32_t words[4][kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const TailJob& job = jobs[l < count ? l : 0];  // unused lanes repeat the first job
    words[0][l] = job.block;
    words[1][l] = job.counter.sample_low;
    words[2][l] = job.counter.row_low;
    words[3][l] = job.counter.high;
  }
  U32xK bits[4];
#pragma GCC unroll 4
  for (int word = 0; word < 4; ++word) {
#pragma GCC unroll 4
    for (int i = 0; i < kVectors; ++i) {
      bits[word].v[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(words[word] + 8 * i));
    }
  }
  philox4x32_10(bits, static_cast<uint32_t>(p.seed), static_cast<uint32_t>(p.seed >> 32));
  F32xK eps[4];
  box_muller4<U32xK, F32xK>(bits, eps);
  alignas(32) float normals[4][kLanes];
#pragma GCC unroll 4
  for (int word = 0; word < 4; ++word) {
#pragma GCC unroll 4
    for (int i = 0; i < kVectors; ++i) _mm256_store_ps(normals[word] + 8 * i, eps[word].v[i]);
  }
  for (int l = 0; l < count; ++l) {
    const TailJob& job = jobs[l];
    for (int word = 0; word < 4; ++word) {
      const auto d = static_cast<int64_t>(dim_of_block(job.block, word));
      if (d >= p.latent_size) continue;
      float value = normals[word][l];
      if (p.mu != nullptr) value = p.mu[job.row * p.latent_size + d] + p.sd[job.row * p.latent_size + d] * value;
      p.out[job.item * p.latent_size + d] = value;
    }
  }
}

template <bool kStream>
void sample_items(const SampleProblem<float>& p, int64_t begin, int64_t end) {
  const int64_t full_groups = p.latent_size / kDimsPerGroup;
  const int64_t blocks = blocks_per_item(p.latent_size);
  Job jobs[kVectors];
  int pending = 0;
  TailJob tail_jobs[kLanes];
  int tail_pending = 0;
  // (row, sample) of the item, advanced without divisions (a 64-bit divide per job cost ~30%).
  int64_t row = begin / p.samples;
  int64_t sample = begin - row * p.samples;
  for (int64_t item = begin; item < end; ++item) {
    const NormalCounter counter =
        normal_counter(static_cast<uint64_t>(p.row_offset + row),
                       static_cast<uint64_t>(p.sample_offset + sample), p.stream);
    for (int64_t group = 0; group < full_groups; ++group) {
      jobs[pending++] = Job{item, row, group, counter};
      if (pending == kVectors) {
        run_jobs<kStream>(p, jobs, pending);
        pending = 0;
      }
    }
    for (int64_t b = full_groups * kBlocksPerGroup; b < blocks; ++b) {
      tail_jobs[tail_pending++] = TailJob{item, row, static_cast<uint32_t>(b), counter};
      if (tail_pending == kLanes) {
        run_tail_jobs(p, tail_jobs, tail_pending);
        tail_pending = 0;
      }
    }
    if (++sample == p.samples) {
      sample = 0;
      ++row;
    }
  }
  if (pending > 0) run_jobs<kStream>(p, jobs, pending);
  if (tail_pending > 0) run_tail_jobs(p, tail_jobs, tail_pending);
  if constexpr (kStream) _mm_sfence();  // streaming stores are visible to other threads after this
}

// Outputs much larger than the caches are written with streaming stores, which skip reading
// each line before writing it (1.6x the write bandwidth here). They need 32-byte alignment.
constexpr int64_t kStreamingBytes = int64_t{32} << 20;

}  // namespace

void sample_items_avx2(const SampleProblem<float>& p, int64_t begin, int64_t end) {
  const bool aligned = reinterpret_cast<uintptr_t>(p.out) % 32 == 0 && p.latent_size % 8 == 0;
  const int64_t bytes = p.rows * p.samples * p.latent_size * static_cast<int64_t>(sizeof(float));
  if (aligned && bytes >= kStreamingBytes) {
    sample_items<true>(p, begin, end);
  } else {
    sample_items<false>(p, begin, end);
  }
}

}  // namespace latentsweep::cpu
