// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// A counter-based generator: the output is a pure function of (counter, key), so any
// element of a random stream can be computed independently of every other one. That is what
// makes slices, thread counts and CPU/CUDA all agree.
#pragma once

#include <cstdint>

#include "host_device.h"
#include "scalar_lanes.h"

namespace latentsweep {

constexpr uint32_t kPhiloxMul0 = 0xD2511F53u, kPhiloxMul1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxWeyl0 = 0x9E3779B9u, kPhiloxWeyl1 = 0xBB67AE85u;

// Ten rounds with the constants of the reference implementation (Random123), in place on the
// counter words. U is uint32_t or a SIMD lane type with the operations of scalar_lanes.h.
template <typename U>
LS_HD void philox4x32_10(U x[4], uint32_t k0, uint32_t k1) {
#if defined(__CUDACC__)
#pragma unroll
#else
#pragma GCC unroll 10
#endif
  for (int round = 0; round < 10; ++round) {
    U hi0, lo0, hi1, lo1;
    mulhilo(x[0], kPhiloxMul0, hi0, lo0);
    mulhilo(x[2], kPhiloxMul1, hi1, lo1);
    x[0] = hi1 ^ x[1] ^ U(k0);
    x[1] = lo1;
    x[2] = hi0 ^ x[3] ^ U(k1);
    x[3] = lo0;
    k0 += kPhiloxWeyl0;
    k1 += kPhiloxWeyl1;
  }
}

}  // namespace latentsweep
