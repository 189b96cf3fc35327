// The baseline (portable) build of the statistics kernel.
// The kernel's vector helpers have internal linkage (statistics_block.h), so how a 32- or
// 64-byte vector would be returned across units (GCC's -Wpsabi note) never matters here.
#pragma GCC diagnostic ignored "-Wpsabi"
#include "statistics_block.h"

namespace latentsweep::cpu {

void statistics_blocks(const StatisticsChunk<float>& c, int64_t first_block, int64_t last_block) {
  statistics_blocks_body(c, first_block, last_block);
}
void statistics_blocks(const StatisticsChunk<double>& c, int64_t first_block, int64_t last_block) {
  statistics_blocks_body(c, first_block, last_block);
}

// Once per chunk, a few traversals: the baseline build serves every CPU (the same operations,
// each rounded once, as complete_traversal's in either build).
template <typename T>
static void add_kept(const StatisticsChunk<T>& c, int64_t count) {
  const int64_t first = c.start / c.num_steps;
  for (int64_t j = 0; j < count; ++j) add_weighted_slope(c, first + j, 0, c.features, c.kept_slopes + j * c.features);
}
void add_kept_traversals(const StatisticsChunk<float>& c, int64_t count) { add_kept(c, count); }
void add_kept_traversals(const StatisticsChunk<double>& c, int64_t count) { add_kept(c, count); }

}  // namespace latentsweep::cpu
