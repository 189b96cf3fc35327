// Portable CPU sampling: one Philox block at a time, float32 and float64.
#include "sample_kernel.h"

#include <atomic>

namespace latentsweep::cpu {

template <typename T>
static void sample_items_scalar(const SampleProblem<T>& p, int64_t begin, int64_t end) {
  const int64_t blocks = blocks_per_item(p.dim);
  for (int64_t item = begin; item < end; ++item) {
    const NormalCounter counter = item_counter(p, item);
    for (int64_t block = 0; block < blocks; ++block) {
      sample_block(p, item, counter, static_cast<uint32_t>(block));
    }
  }
}

void sample_items_generic(const SampleProblem<float>& p, int64_t begin, int64_t end) {
  sample_items_scalar(p, begin, end);
}

void sample_items_generic(const SampleProblem<double>& p, int64_t begin, int64_t end) {
  sample_items_scalar(p, begin, end);
}

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

static std::atomic<bool> avx2_enabled{true};

bool use_avx2() { return LATENTSWEEP_HAVE_AVX2_KERNELS && cpu_has_avx2() && avx2_enabled.load(); }

bool set_avx2_enabled(bool enabled) { return avx2_enabled.exchange(enabled); }

static std::atomic<int64_t> avx2_tasks{0};

int64_t avx2_task_count() { return avx2_tasks.load(); }

void count_avx2_task() { avx2_tasks.fetch_add(1, std::memory_order_relaxed); }

}  // namespace latentsweep::cpu
