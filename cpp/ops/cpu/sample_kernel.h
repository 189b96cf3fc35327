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

// True when this CPU runs the AVX2 kernels and they have not been switched off.
bool use_avx2();
// Switch the AVX2 kernels off (tests compare both paths); returns the previous setting.
bool set_avx2_enabled(bool enabled);
bool cpu_has_avx2();
// How many tasks ran the AVX2 kernel (tests check that the switch above takes effect).
int64_t avx2_task_count();
void count_avx2_task();

}  // namespace latentsweep::cpu
