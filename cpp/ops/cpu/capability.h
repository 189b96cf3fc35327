// Which CPU kernels run: chosen once per process, in the style of ATen's ATEN_CPU_CAPABILITY.
//
//   LATENTSWEEP_CPU_CAPABILITY=default   the portable kernels
//   LATENTSWEEP_CPU_CAPABILITY=avx2      the AVX2 + FMA kernels (when built and the CPU has them)
//   unset                                the best this build and CPU support
//
// A request the CPU cannot honour falls back to the best supported one (with a warning on
// stderr), so a script exported to another machine still runs. build_info() reports the
// choice; tests compare the paths by running subprocesses with the variable set.
#pragma once

namespace latentsweep::cpu {

enum class CpuCapability { kDefault, kAvx2 };

CpuCapability cpu_capability();
const char* cpu_capability_name(CpuCapability capability);

// Whether this CPU has AVX2 and FMA (whatever was chosen).
bool cpu_has_avx2();

}  // namespace latentsweep::cpu
