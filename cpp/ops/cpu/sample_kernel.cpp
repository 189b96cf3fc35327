// Portable CPU sampling: one Philox block at a time, float32 and float64.
#include "sample_kernel.h"

namespace latentsweep::cpu {

template <typename T>
static void sample_items_scalar(const SampleProblem<T>& p, int64_t begin, int64_t end) {
  const int64_t blocks = blocks_per_item(p.latent_size);
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

}  // namespace latentsweep::cpu
