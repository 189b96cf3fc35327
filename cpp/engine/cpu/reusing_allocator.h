// Reuse of the decoder's large CPU buffers while a sweep runs.
//
// A sweep calls the decoder once per chunk, and every call allocates and frees the same large
// activations. glibc serves blocks above its mmap threshold with fresh mappings, and its
// dynamic threshold only moves *above* a freed block's size, so blocks of exactly that size
// keep being mapped and unmapped: every chunk page-faults all its activations again (profiled:
// 86k-135k faults and +20-50% time per run of an MLP decoder in a plain process; the same loop
// written by hand takes 0 or 270k faults depending on the allocation history).
//
// While a ReuseCpuBuffers guard is alive, torch's CPU allocator is replaced by one that keeps
// freed blocks of at least kMinReusedBytes (up to kMaxKeptBytes in all) and hands them out
// again for requests of nearly the same size (or of the same buffer's size at full batch, see
// ShortChunkRequests); torch's allocator comes back, and every kept
// block is freed, when the last guard ends. Blocks come from and go to c10::alloc_cpu and
// c10::free_cpu, so a block may be allocated by one allocator and freed by the other. A process
// forked meanwhile keeps only the guards of the thread that forked (torch's allocator back in a
// child of another thread's sweep). Nothing changes when another (non-default) CPU allocator is
// installed, or off Linux/glibc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace latentsweep::cpu {

constexpr std::size_t kMinReusedBytes = std::size_t{64} << 10;  // below this, malloc's bins are fast
constexpr std::size_t kMaxKeptBytes = std::size_t{2} << 30;     // idle memory kept at most

class ReuseCpuBuffers {
 public:
  ReuseCpuBuffers();
  ~ReuseCpuBuffers();
  ReuseCpuBuffers(const ReuseCpuBuffers&) = delete;
  ReuseCpuBuffers& operator=(const ReuseCpuBuffers&) = delete;
};

// While alive (with a ReuseCpuBuffers guard), the calling thread decodes a chunk of `rows` rows
// after chunks of `full_rows`: a request that no kept block of nearly its size serves takes one
// of nearly its size scaled by full_rows / rows (the same buffer in a full chunk: a decoder's
// activations grow with the rows). A sweep's short chunk (a unit's last) then decodes in the
// blocks its full chunks left idle. It allocated a set of its own beside them, kept idle in
// turn through the full chunks after: +0.6 GiB at the peak of a sweep keeping 1 GiB of 3 x 512
// x 512 outputs at batch 64. Not any larger block: the decoder's buffers then took blocks made
// for larger ones of the same call, and the peak did not fall (tried). Nothing changes when
// rows >= full_rows.
class ShortChunkRequests {
 public:
  ShortChunkRequests(int64_t rows, int64_t full_rows);
  ~ShortChunkRequests();
  ShortChunkRequests(const ShortChunkRequests&) = delete;
  ShortChunkRequests& operator=(const ShortChunkRequests&) = delete;

 private:
  int64_t previous_rows_, previous_full_rows_;  // an enclosing guard's (restored at the end)
};

// What the reusing allocator did since the process started (for tests and benchmarks), and the
// blocks of >= kMinReusedBytes it handed out and were not freed yet (in use), which the
// anchors' probe reads to measure a decoder's memory per code on the CPU, as the CUDA
// allocator's peak statistics do on a GPU. Blocks allocated before a guard and freed under it
// count down only: read differences, from reset_reuse_peak to reuse_counters().peak_bytes. One
// count for the process: sweeps in two threads at once read each other's blocks too.
struct ReuseCounters {
  bool active;           // installed as torch's CPU allocator now
  int64_t reused;        // allocations served from kept blocks
  int64_t allocated;     // allocations of >= kMinReusedBytes that had to call alloc_cpu
  int64_t kept_bytes;    // bytes held idle now
  int64_t in_use_bytes;  // usable bytes of the large blocks handed out and not freed yet
  int64_t peak_bytes;    // the most of in_use_bytes since the last reset_reuse_peak
};
ReuseCounters reuse_counters();
// Starts a new peak (peak_bytes = in_use_bytes) and returns in_use_bytes.
int64_t reset_reuse_peak();

}  // namespace latentsweep::cpu
