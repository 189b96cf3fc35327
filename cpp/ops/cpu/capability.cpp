#include "capability.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace latentsweep::cpu {
namespace {

constexpr const char* kVariable = "LATENTSWEEP_CPU_CAPABILITY";

CpuCapability best_supported() {
  return LATENTSWEEP_HAVE_AVX2_KERNELS && cpu_has_avx2() ? CpuCapability::kAvx2
                                                         : CpuCapability::kDefault;
}

CpuCapability choose() {
  const CpuCapability best = best_supported();
  const char* requested = std::getenv(kVariable);
  if (requested == nullptr || *requested == '\0') return best;
  if (std::strcmp(requested, "default") == 0) return CpuCapability::kDefault;
  if (std::strcmp(requested, "avx2") == 0) {
    if (best == CpuCapability::kAvx2) return best;
    std::fprintf(stderr, "latentsweep: %s=avx2 but this %s; using the default kernels\n",
                 kVariable, LATENTSWEEP_HAVE_AVX2_KERNELS ? "CPU has no AVX2/FMA"
                                                          : "build has no AVX2 kernels");
    return best;
  }
  std::fprintf(stderr, "latentsweep: ignoring %s=%s (expected 'default' or 'avx2'); using '%s'\n",
               kVariable, requested, cpu_capability_name(best));
  return best;
}

}  // namespace

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

CpuCapability cpu_capability() {
  static const CpuCapability chosen = choose();  // once per process (thread-safe static)
  return chosen;
}

const char* cpu_capability_name(CpuCapability capability) {
  return capability == CpuCapability::kAvx2 ? "avx2" : "default";
}

}  // namespace latentsweep::cpu
