// The baseline (portable) build of the statistics kernel.
// The kernel's vector helpers have internal linkage (statistics_block.h), so how a 32- or
// 64-byte vector would be returned across units (GCC's -Wpsabi note) never matters here.
#pragma GCC diagnostic ignored "-Wpsabi"
#include "statistics_block.h"

namespace latentsweep::cpu {

void statistics_block(const StatisticsChunk<float>& c, int64_t block) { statistics_block_body(c, block); }
void statistics_block(const StatisticsChunk<double>& c, int64_t block) { statistics_block_body(c, block); }

}  // namespace latentsweep::cpu
