// CPU path-grid rows on raw pointers. A torch-free unit compiled with the kernel flags (no FMA
// contraction), so its rounding is torch's elementwise ops' and the CUDA kernel's.
#pragma once

#include <cstdint>

#include "latentsweep/path_grid.h"

namespace latentsweep::cpu {

// Writes output rows [begin, end) (relative to grid.first).
void path_rows(const PathGrid<float>& grid, int64_t begin, int64_t end);
void path_rows(const PathGrid<double>& grid, int64_t begin, int64_t end);

}  // namespace latentsweep::cpu
