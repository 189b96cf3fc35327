// Marks functions usable from both the CPU kernels and the CUDA kernels.
// Headers under cpp/latentsweep/ include no torch headers so nvcc compiles them as-is.
#pragma once

#if defined(__CUDACC__)
#define LS_HD __host__ __device__ __forceinline__
#else
// static + always_inline: every translation unit gets its own inlined copy, so the AVX2 unit
// (compiled with -mavx2) never lends an instantiation to the portable one.
#define LS_HD static inline __attribute__((always_inline))
#endif
