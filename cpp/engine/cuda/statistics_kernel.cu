// CUDA sweep statistics for one chunk in four launches, each in a fixed order:
//   1. 16 bytes of features per thread (4 floats, 2 doubles), a feature block per thread block,
//      a thread block per run of whole traversals: reads each output once, carries the
//      traversal's slopes in registers, and sums each row's magnitudes |y - x0| into the block's
//      kAccumulators partial sums (through shared memory);
//   2. one thread per row: the row's partials in block order, its effect;
//   3. one warp per latent dim: its rows' effects added to its total in grid order;
//   4. one thread per (dim, feature): its completed traversals' weighted slopes, in grid order.
// Arithmetic is the CPU kernel's (latentsweep/statistics_layout.h): correctly rounded
// intrinsics, so no multiply-add is fused whatever the compiler flags.
#include "statistics_kernel.h"

#include <cstdint>

#include "latentsweep/statistics_layout.h"
#include "latentsweep/traversal_grid.h"

namespace latentsweep::cuda {
namespace {

constexpr int kWarp = 32;
constexpr unsigned int kFullWarp = 0xffffffffu;
constexpr int kRowsPerWarp = kWarp / kAccumulators;  // rows a warp sums at once: a lane per accumulator
constexpr int64_t kRowsPerThreadBlock = 64;                  // about; a thread block takes whole traversals
constexpr int kThreads = 256;                                // launches 2-4
constexpr int kLoadsPerLane = 4;                             // launch 3: a warp loads 128 row effects at once
constexpr int kTraversalsAtOnce = 16;                        // launch 4: loads issued before the additions
static_assert(kWarp % kAccumulators == 0, "a warp sums whole rows");

__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float magnitude(float a, float b) { return fabsf(__fsub_rn(a, b)); }
__device__ __forceinline__ double magnitude(double a, double b) { return fabs(__dsub_rn(a, b)); }

// 16 bytes of consecutive features, one load or store: 4 floats or 2 doubles.
template <typename T>
struct Features16;
template <>
struct Features16<float> {
  using Vector = float4;
  static constexpr int kCount = 4;
};
template <>
struct Features16<double> {
  using Vector = double2;
  static constexpr int kCount = 2;
};

// `count` (<= N) consecutive values at p into v (the rest 0): one 16-byte load when kAligned
// and the run is whole; kStreaming: a read-once (cache-streaming) load.
template <typename T, bool kAligned, bool kStreaming>
__device__ __forceinline__ void load_run(const T* p, int count, T (&v)[Features16<T>::kCount]) {
  constexpr int N = Features16<T>::kCount;
  using Vector = typename Features16<T>::Vector;
  if (kAligned && count == N) {
    const Vector w = kStreaming ? __ldcs(reinterpret_cast<const Vector*>(p)) : *reinterpret_cast<const Vector*>(p);
    __builtin_memcpy(v, &w, sizeof w);
    return;
  }
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = i < count ? (kStreaming ? __ldcs(p + i) : p[i]) : T(0);
}

template <typename T, bool kAligned>
__device__ __forceinline__ void store_run(T* p, int count, const T (&v)[Features16<T>::kCount]) {
  constexpr int N = Features16<T>::kCount;
  using Vector = typename Features16<T>::Vector;
  if (kAligned && count == N) {
    Vector w;
    __builtin_memcpy(&w, v, sizeof w);
    *reinterpret_cast<Vector*>(p) = w;
    return;
  }
#pragma unroll
  for (int i = 0; i < N; ++i) {
    if (i < count) p[i] = v[i];
  }
}

// Launch 1. Each thread's per-row work (the grid index, the step tests) and its loads serve 16
// bytes of features: with one feature per thread (the first version) the pass issued ~2.5x the
// instructions and read the outputs at 630 GB/s on an H200, 980 GB/s with this (bench_statistics,
// 65536-row chunks, 2026-11-27). A feature block is one warp (float) or two (double); a pass
// loads kRowsPerRun rows (all loads in flight at once), then the block sums them from shared
// memory. kAligned: every row and vector starts on 16 bytes (F a multiple of the run, aligned
// pointers), so a run is one load or store.
constexpr int kRowsPerRun = 8;
template <typename T, bool kAligned>
__global__ void __launch_bounds__(kFeatureBlock / Features16<T>::kCount)
traversal_runs_kernel(StatisticsChunk<T> c, int64_t traversals_per_block, int64_t feature_block_count, int64_t groups) {
  constexpr int N = Features16<T>::kCount;
  constexpr int kBlockThreads = kFeatureBlock / N;
  constexpr int kRowsAtOnce = kBlockThreads / kWarp * kRowsPerWarp;  // rows the block sums at once
  static_assert(kBlockThreads % kWarp == 0 && kRowsPerRun % kRowsAtOnce == 0, "whole warps, whole rounds");
  // Rows padded by kAccumulators so the rows a warp sums at once fall in different banks.
  __shared__ __align__(16) T row_magnitudes[kRowsPerRun][kFeatureBlock + kAccumulators];
  const int64_t group = groups - 1 - blockIdx.x / feature_block_count;  // the last traversals first (in L2)
  const int64_t feature_block = blockIdx.x % feature_block_count;
  const int64_t first_traversal = c.start / c.num_steps;
  const int64_t traversal0 = first_traversal + group * traversals_per_block;
  const int64_t row_begin = max(traversal0 * c.num_steps - c.start, int64_t{0});
  const int64_t row_end = min((traversal0 + traversals_per_block) * c.num_steps - c.start, c.rows);
  const int64_t f0 = feature_block * kFeatureBlock;
  const int width = static_cast<int>(min(kFeatureBlock, c.features - f0));
  const int first = threadIdx.x * N;                  // this thread's first feature in the block
  const int mine = max(0, min(N, width - first));     // how many of its N features the block has
  const int64_t f = f0 + first;

  GridIndex index = unravel_grid(c.start + row_begin, c.num_dims, c.num_steps);
  int64_t traversal = traversal0 - first_traversal;
  T previous[N], slope[N], x[N];
#pragma unroll
  for (int i = 0; i < N; ++i) previous[i] = slope[i] = x[i] = T(0);
  if (mine > 0 && index.step > 0) {  // a chunk that starts inside a traversal continues its slope
    load_run<T, kAligned, false>(c.previous + f, mine, previous);
    load_run<T, kAligned, false>(c.slope_in + f, mine, slope);
  }
  const bool keep_slopes = c.num_steps > 1;
  const int warp = threadIdx.x / kWarp, row_of_warp = (threadIdx.x % kWarp) / kAccumulators;
  const int lane = threadIdx.x % kAccumulators;
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowsPerRun) {
    T ys[kRowsPerRun][N];  // all the pass's loads in flight at once
#pragma unroll
    for (int j = 0; j < kRowsPerRun; ++j) {
      load_run<T, kAligned, true>(c.outputs + (r0 + j) * c.features + f, r0 + j < row_end ? mine : 0, ys[j]);
    }
#pragma unroll
    for (int j = 0; j < kRowsPerRun; ++j) {
      const int64_t r = r0 + j;
      T m[N];
#pragma unroll
      for (int i = 0; i < N; ++i) m[i] = T(0);
      if (r < row_end) {
        if (mine > 0) {
          if (index.step == 0 || r == row_begin) {
            load_run<T, kAligned, false>(c.anchor_outputs + index.anchor * c.features + f, mine, x);
          }
#pragma unroll
          for (int i = 0; i < N; ++i) {
            m[i] = magnitude(ys[j][i], x[i]);
            if (index.step > 0) slope[i] = add(slope[i], magnitude(ys[j][i], previous[i]));
            previous[i] = ys[j][i];
          }
          if (keep_slopes && (index.step == c.num_steps - 1 || r == c.rows - 1)) {
            store_run<T, kAligned>(c.slopes + traversal * c.features + f, mine, slope);
          }
        }
        if (index.step == c.num_steps - 1) {
#pragma unroll
          for (int i = 0; i < N; ++i) slope[i] = T(0);
          ++traversal;
        }
        advance_grid(index, c.num_dims, c.num_steps);
      }
      store_run<T, true>(&row_magnitudes[j][first], N, m);  // (shared rows are 16-byte aligned)
    }
    __syncthreads();
    // Accumulator `lane` of a row adds the block's features lane, lane + kAccumulators, ... in
    // order; then the row's accumulators in order, in double (statistics_layout.h).
#pragma unroll
    for (int round = 0; round < kRowsPerRun / kRowsAtOnce; ++round) {
      const int row = round * kRowsAtOnce + warp * kRowsPerWarp + row_of_warp;
      T accumulator = T(0);
      for (int g = lane; g < width; g += kAccumulators) accumulator = add(accumulator, row_magnitudes[row][g]);
      double partial = 0;
      for (int l = 0; l < kAccumulators; ++l) {
        partial = __dadd_rn(partial, static_cast<double>(__shfl_sync(kFullWarp, accumulator, row_of_warp * kAccumulators + l)));
      }
      if (lane == 0 && r0 + row < row_end) c.effect_partial[feature_block * c.rows + r0 + row] = partial;
    }
    __syncthreads();  // the rows are summed before the next pass writes them
  }
}

template <typename T>
__global__ void row_effect_kernel(StatisticsChunk<T> c, int64_t feature_block_count) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= c.rows) return;
  double sum = 0;
  for (int64_t b = 0; b < feature_block_count; ++b) sum = __dadd_rn(sum, c.effect_partial[b * c.rows + r]);
  const double mean = c.features > 0 ? __ddiv_rn(sum, static_cast<double>(c.features)) : 0.0;
  c.row_mean[r] = mean;
  c.effect[r] = static_cast<T>(mean);
}

// The chunk's traversals of latent dim k: i = first + j (j in the chunk) with i % K == k.
__device__ __forceinline__ int64_t first_of_dim(int64_t k, int64_t first_traversal, int64_t num_dims) {
  return ((k - first_traversal % num_dims) % num_dims + num_dims) % num_dims;
}

// One warp per latent dim. Its rows in the chunk, in grid order, are numbered o = 0, 1, ...; the
// warp loads kLoadsPerLane * kWarp of them at once (consecutive lanes, consecutive rows), then
// every lane adds them to the dim's total in order (the chain of additions is the CPU's).
template <typename T>
__global__ void dim_effect_kernel(StatisticsChunk<T> c, int64_t traversals) {
  const int64_t k = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (k >= c.num_dims) return;  // whole warps
  const int64_t num_steps = c.num_steps, first_traversal = c.start / num_steps;
  const int64_t j0 = first_of_dim(k, first_traversal, c.num_dims);
  if (j0 >= traversals) return;
  // Rows of the dim's first traversal before the chunk (only traversal 0 starts before it), and
  // of its last after the chunk.
  const int64_t skip = max(c.start - (first_traversal + j0) * num_steps, int64_t{0});
  const int64_t dim_traversals = (traversals - 1 - j0) / c.num_dims + 1;
  const int64_t last = first_traversal + j0 + (dim_traversals - 1) * c.num_dims;
  const int64_t overhang = max((last + 1) * num_steps - c.start - c.rows, int64_t{0});
  const int64_t count = dim_traversals * num_steps - skip - overhang;
  // Each batch's loads are issued before the previous batch's additions, so the chain of
  // additions does not wait for memory.
  const auto load = [&](double (&mean)[kLoadsPerLane], int64_t base) {
#pragma unroll
    for (int i = 0; i < kLoadsPerLane; ++i) {
      const int64_t o = base + i * kWarp + lane + skip;  // as if the first traversal were whole
      const int64_t t = o / num_steps;
      const int64_t row = (first_traversal + j0 + t * c.num_dims) * num_steps + (o - t * num_steps) - c.start;
      mean[i] = o - skip < count ? c.row_mean[row] : 0.0;
    }
  };
  double total = c.dim_effect_sum[k];
  double next[kLoadsPerLane];
  load(next, 0);
  for (int64_t base = 0; base < count; base += kLoadsPerLane * kWarp) {
    double mean[kLoadsPerLane];
#pragma unroll
    for (int i = 0; i < kLoadsPerLane; ++i) mean[i] = next[i];
    if (base + kLoadsPerLane * kWarp < count) load(next, base + kLoadsPerLane * kWarp);
    const int64_t here = min(count - base, static_cast<int64_t>(kLoadsPerLane * kWarp));
#pragma unroll
    for (int i = 0; i < kLoadsPerLane; ++i) {
#pragma unroll
      for (int l = 0; l < kWarp; ++l) {
        const double value = __shfl_sync(kFullWarp, mean[i], l);
        if (i * kWarp + l < here) total = __dadd_rn(total, value);
      }
    }
  }
  if (lane == 0) c.dim_effect_sum[k] = total;
}

// One thread per (latent slot i, feature f): the chunk's completed traversals j = i, i + K, ...
// (all of one latent), added to their row of the sums in grid order. Only the chunk's latents
// are launched: min(K, completed) slots, not K.
template <typename T>
__global__ void sensitivity_kernel(StatisticsChunk<T> c, int64_t completed, int64_t slots) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= slots * c.features) return;
  const int64_t i = item / c.features, f = item - i * c.features;
  const int64_t first_traversal = c.start / c.num_steps;
  double* sum = c.sensitivity_sum + (first_traversal + i - c.sums_first_traversal) % c.num_dims * c.features + f;
  double total = *sum;
  for (int64_t j = i; j < completed; j += kTraversalsAtOnce * c.num_dims) {
    double slope[kTraversalsAtOnce], weight[kTraversalsAtOnce];
#pragma unroll
    for (int n = 0; n < kTraversalsAtOnce; ++n) {
      const int64_t jn = j + n * c.num_dims;
      slope[n] = jn < completed ? static_cast<double>(c.slopes[jn * c.features + f]) : 0.0;
      weight[n] = jn < completed ? c.inv_range[first_traversal + jn] : 0.0;
    }
#pragma unroll
    for (int n = 0; n < kTraversalsAtOnce; ++n) {
      if (j + n * c.num_dims < completed) total = __dadd_rn(total, __dmul_rn(slope[n], weight[n]));
    }
  }
  *sum = total;
}

unsigned int blocks_for(int64_t items, int64_t threads) { return static_cast<unsigned int>((items + threads - 1) / threads); }

template <typename T>
void launch(const StatisticsChunk<T>& c, cudaStream_t stream) {
  if (c.rows == 0) return;
  const int64_t traversals = traversals_touched(c.start, c.rows, c.num_steps);
  const int64_t feature_block_count = feature_blocks(c.features);
  if (feature_block_count > 0) {
    // Short traversals go several to a thread block, so a block has rows enough to hide latency.
    const int64_t per_block = max(int64_t{1}, kRowsPerThreadBlock / c.num_steps);
    const int64_t groups = (traversals + per_block - 1) / per_block;
    const unsigned int blocks = static_cast<unsigned int>(groups * feature_block_count);
    constexpr int N = Features16<T>::kCount;
    const auto on16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    const bool aligned = c.features % N == 0 && on16(c.outputs) && on16(c.previous) && on16(c.anchor_outputs) &&
                         on16(c.slope_in) && on16(c.slopes);
    if (aligned) {
      traversal_runs_kernel<T, true><<<blocks, kFeatureBlock / N, 0, stream>>>(c, per_block, feature_block_count, groups);
    } else {
      traversal_runs_kernel<T, false><<<blocks, kFeatureBlock / N, 0, stream>>>(c, per_block, feature_block_count, groups);
    }
  }
  row_effect_kernel<T><<<blocks_for(c.rows, kThreads), kThreads, 0, stream>>>(c, feature_block_count);
  dim_effect_kernel<T><<<blocks_for(c.num_dims * kWarp, kThreads), kThreads, 0, stream>>>(c, traversals);
  // One-step traversals have no slope to add.
  const int64_t completed = c.num_steps == 1 ? 0 : traversals_completed(c.start, c.rows, c.num_steps);
  if (completed > 0 && c.features > 0) {
    const int64_t slots = min(c.num_dims, completed);
    sensitivity_kernel<T><<<blocks_for(slots * c.features, kThreads), kThreads, 0, stream>>>(c, completed, slots);
  }
}

}  // namespace

void launch_statistics(const StatisticsChunk<float>& chunk, cudaStream_t stream) { launch(chunk, stream); }
void launch_statistics(const StatisticsChunk<double>& chunk, cudaStream_t stream) { launch(chunk, stream); }

}  // namespace latentsweep::cuda
