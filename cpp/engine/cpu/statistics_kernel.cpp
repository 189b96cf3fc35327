// The baseline (portable) build of the statistics kernel.
#include "statistics_block.h"

namespace latentsweep::cpu {

void statistics_block(const StatisticsChunk& c, int64_t block) { statistics_block_body(c, block); }

}  // namespace latentsweep::cpu
