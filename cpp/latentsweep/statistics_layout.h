// The fixed order in which the sweep statistics add a row's effect, shared by the CPU kernel
// (cpp/engine/cpu) and the CUDA kernel (cpp/engine/cuda) so both give the same bits:
//   features go in blocks of kFeatureBlock; within block b, accumulator l (of kAccumulators)
//   sums |y[f] - x0[f]| over the block's features f with (f - b * kFeatureBlock) % kAccumulators
//   == l, in increasing f, in the outputs' precision, from zero; the block's partial is the sum
//   of its accumulators in order, in float64; the row's total is the sum of its blocks' partials
//   in block order, in float64, and its effect that total / F.
// A traversal's slope adds |y[s] - y[s - 1]| in step order in the outputs' precision, and joins
// the float64 sensitivity total of its dim as slope * (1 / range), rounded, then added, in grid
// order of the traversals (no fused multiply-add anywhere).
#pragma once

#include <cstdint>

#include "host_device.h"

namespace latentsweep {

constexpr int64_t kFeatureBlock = 128;  // features per block (CPU: per parallel task; CUDA: per thread block)
// partial sums per block and row (CPU: 8 floats in one AVX2 register, 8 doubles in two)
constexpr int kAccumulators = 8;

LS_HD int64_t feature_blocks(int64_t features) { return (features + kFeatureBlock - 1) / kFeatureBlock; }

}  // namespace latentsweep
