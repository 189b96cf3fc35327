// CPU direction-grid rows on raw pointers. A torch-free unit compiled with the kernel flags
// (no FMA contraction), so its rounding matches the CUDA kernel's.
#pragma once

#include <cstdint>

#include "latentsweep/direction_grid.h"

namespace latentsweep::cpu {

// Writes output rows [begin, end) (relative to grid.start).
void direction_rows(const DirectionGrid<float>& grid, int64_t begin, int64_t end);
void direction_rows(const DirectionGrid<double>& grid, int64_t begin, int64_t end);

}  // namespace latentsweep::cpu
