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

void add_kept_traversals(const StatisticsChunk<float>& c, int64_t count) { add_kept_traversals_body(c, count); }
void add_kept_traversals(const StatisticsChunk<double>& c, int64_t count) { add_kept_traversals_body(c, count); }

}  // namespace latentsweep::cpu
