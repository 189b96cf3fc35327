// CUDA launchers on raw pointers. The .cu files that define them include no torch headers,
// so CI compiles them with plain nvcc; the registrations in cpp/ops/cuda/*.cpp pass pointers
// and the current stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "latentsweep/direction_grid.h"
#include "latentsweep/path_grid.h"
#include "latentsweep/sample_problem.h"
#include "latentsweep/traversal_grid.h"

namespace latentsweep::cuda {

void launch_sample(const SampleProblem<float>& problem, cudaStream_t stream);
void launch_sample(const SampleProblem<double>& problem, cudaStream_t stream);

void launch_traversal_codes(const TraversalGrid<uint16_t>& grid, cudaStream_t stream);
void launch_traversal_codes(const TraversalGrid<uint32_t>& grid, cudaStream_t stream);
void launch_traversal_codes(const TraversalGrid<uint64_t>& grid, cudaStream_t stream);

// The number of (anchor, direction) pairs rows [start, start + count) touch: the size of the
// projections scratch buffer (double) that launch_direction_codes fills and reads.
int64_t direction_projection_count(int64_t start, int64_t count, int64_t num_steps);
void launch_direction_codes(const DirectionGrid<float>& grid, double* projections,
                            cudaStream_t stream);
void launch_direction_codes(const DirectionGrid<double>& grid, double* projections,
                            cudaStream_t stream);

void launch_path_codes(const PathGrid<float>& grid, cudaStream_t stream);
void launch_path_codes(const PathGrid<double>& grid, cudaStream_t stream);

// The last launch error as text, or null when there is none (checked by the caller).
const char* last_launch_error();

}  // namespace latentsweep::cuda
