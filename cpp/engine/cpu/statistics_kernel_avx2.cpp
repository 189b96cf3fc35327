// The AVX2 build of the statistics kernel (compiled with -mavx2; see CMakeLists.txt).
#include "statistics_block.h"

namespace latentsweep::cpu {

void statistics_block_avx2(const StatisticsChunk& c, int64_t block) { statistics_block_body(c, block); }

}  // namespace latentsweep::cpu
