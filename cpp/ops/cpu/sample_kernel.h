// CPU sampling kernels on raw pointers (no torch here: the AVX2 variant is compiled with its
// own instruction-set flags, and torch's inline functions must not be).
#pragma once

#include <cstdint>

#include "latentsweep/sample_problem.h"

namespace latentsweep::cpu {

// Fill the items [begin, end) (item = row * samples + sample) of the problem.
void sample_items_generic(const SampleProblem<float>& problem, int64_t begin, int64_t end);
void sample_items_generic(const SampleProblem<double>& problem, int64_t begin, int64_t end);
void sample_items_avx2(const SampleProblem<float>& problem, int64_t begin, int64_t end);

}  // namespace latentsweep::cpu
