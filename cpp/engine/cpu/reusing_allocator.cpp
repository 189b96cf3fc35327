#include "reusing_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>

#if defined(__linux__) && defined(__GLIBC__)
#include <malloc.h>
#include <pthread.h>
#define LATENTSWEEP_REUSE_CPU_BUFFERS 1
#else
#define LATENTSWEEP_REUSE_CPU_BUFFERS 0
#endif

namespace latentsweep::cpu {
namespace {

#if LATENTSWEEP_REUSE_CPU_BUFFERS

class ReusingCpuAllocator final : public c10::Allocator {
 public:
  static ReusingCpuAllocator& instance() {
    static auto* allocator = [] {
      auto* created = new ReusingCpuAllocator();  // never destroyed: deleters may outlive main
      pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child);
      return created;
    }();
    return *allocator;
  }

  // Guards held by the calling thread: the one thread a forked child keeps.
  static int& guards_held_here() {
    thread_local int held = 0;
    return held;
  }

  // The chunk the calling thread decodes (see ShortChunkRequests): {0, 0} outside one.
  struct ChunkRows {
    int64_t rows = 0, full_rows = 0;
  };
  static ChunkRows& chunk_rows_here() {
    thread_local ChunkRows here;
    return here;
  }

  c10::DataPtr allocate(std::size_t nbytes) override {
    void* data = take(nbytes);
    if (data == nullptr) data = c10::alloc_cpu(nbytes);
    if (nbytes >= kMinReusedBytes && data != nullptr) count_in_use(static_cast<int64_t>(malloc_usable_size(data)));
    c10::profiledCPUMemoryReporter().New(data, nbytes);  // as torch's allocator reports
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Any block from c10::alloc_cpu may come here (torch's raw_deallocate looks the allocator
  // up when it frees), so the size is asked of malloc, never remembered.
  static void release(void* data) {
    if (data == nullptr) return;
    c10::profiledCPUMemoryReporter().Delete(data);
    const std::size_t size = malloc_usable_size(data);
    if (size >= kMinReusedBytes) instance().count_in_use(-static_cast<int64_t>(size));
    if (!instance().keep(data, size)) c10::free_cpu(data);
  }

  void enter() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (guards_++ > 0) return;
    previous_ = c10::GetCPUAllocator();
    if (previous_ != c10::GetDefaultCPUAllocator()) return;  // someone else's allocator: leave it
    c10::SetCPUAllocator(this);
    active_ = c10::GetCPUAllocator() == this;
  }

  void exit() {
    std::multimap<std::size_t, void*> kept;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--guards_ > 0) return;
      if (active_ && c10::GetCPUAllocator() == this) c10::SetCPUAllocator(previous_);
      active_ = false;
      kept.swap(kept_);
      kept_bytes_ = 0;
    }
    for (const auto& [size, data] : kept) c10::free_cpu(data);
  }

  // A fork (a DataLoader's workers, a subprocess) while another thread sweeps: the child must
  // not inherit the lock held, nor the allocator installed by guards whose threads it lacks
  // (it kept growing its idle blocks up to kMaxKeptBytes, for good).
  static void before_fork() { instance().mutex_.lock(); }
  static void after_fork_in_parent() { instance().mutex_.unlock(); }
  static void after_fork_in_child() {
    ReusingCpuAllocator& self = instance();
    self.guards_ = guards_held_here();
    if (self.guards_ == 0) {
      if (self.active_ && c10::GetCPUAllocator() == &self) c10::SetCPUAllocator(self.previous_);
      self.active_ = false;
      for (const auto& [size, data] : self.kept_) c10::free_cpu(data);  // (glibc's malloc works after fork)
      self.kept_.clear();
      self.kept_bytes_ = 0;
    }
    self.mutex_.unlock();
  }

  ReuseCounters counters() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {active_, reused_, allocated_, static_cast<int64_t>(kept_bytes_), in_use_.load(), peak_.load()};
  }

  int64_t reset_peak() {
    const int64_t now = in_use_.load();
    peak_.store(now);
    return now;
  }

 private:
  // A kept block of nearly nbytes (at least, and at most 1/8 more), or of nearly nbytes scaled
  // to the full chunk's rows (see ShortChunkRequests), or null.
  void* take(std::size_t nbytes) {
    if (nbytes < kMinReusedBytes) return nullptr;
    const ChunkRows chunk = chunk_rows_here();
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = between(nbytes, nbytes + nbytes / 8);
    if (it == kept_.end() && chunk.rows > 0 && chunk.rows < chunk.full_rows) {
      const long double full = static_cast<long double>(nbytes) * chunk.full_rows / chunk.rows;
      const auto scaled = static_cast<std::size_t>(std::min<long double>(full, SIZE_MAX / 2));
      it = between(std::max(nbytes, scaled - scaled / 8), scaled + scaled / 8);
    }
    if (it == kept_.end()) {
      ++allocated_;
      return nullptr;
    }
    void* data = it->second;
    kept_bytes_ -= it->first;
    kept_.erase(it);
    ++reused_;
    return data;
  }

  // The smallest kept block of low..high bytes, or end (mutex_ held).
  std::multimap<std::size_t, void*>::iterator between(std::size_t low, std::size_t high) {
    const auto it = kept_.lower_bound(low);
    return it != kept_.end() && it->first <= high ? it : kept_.end();
  }

  // Atomics, not the mutex: a block's release may come from any thread at any time.
  void count_in_use(int64_t change) {
    const int64_t now = in_use_.fetch_add(change) + change;
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
  }

  bool keep(void* data, std::size_t size) {
    if (size < kMinReusedBytes) return false;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!active_ || kept_bytes_ + size > kMaxKeptBytes) return false;
    kept_.emplace(size, data);
    kept_bytes_ += size;
    return true;
  }

  std::mutex mutex_;
  int guards_ = 0;
  bool active_ = false;
  c10::Allocator* previous_ = nullptr;
  std::multimap<std::size_t, void*> kept_;  // usable size -> block
  std::size_t kept_bytes_ = 0;
  int64_t reused_ = 0, allocated_ = 0;
  std::atomic<int64_t> in_use_{0}, peak_{0};
};

#endif

}  // namespace

#if LATENTSWEEP_REUSE_CPU_BUFFERS
ReuseCpuBuffers::ReuseCpuBuffers() {
  ReusingCpuAllocator::instance().enter();
  ++ReusingCpuAllocator::guards_held_here();
}
ReuseCpuBuffers::~ReuseCpuBuffers() {
  --ReusingCpuAllocator::guards_held_here();
  ReusingCpuAllocator::instance().exit();
}
ShortChunkRequests::ShortChunkRequests(int64_t rows, int64_t full_rows) {
  auto& here = ReusingCpuAllocator::chunk_rows_here();
  previous_rows_ = here.rows;
  previous_full_rows_ = here.full_rows;
  here = {rows, full_rows};
}
ShortChunkRequests::~ShortChunkRequests() {
  ReusingCpuAllocator::chunk_rows_here() = {previous_rows_, previous_full_rows_};
}
ReuseCounters reuse_counters() { return ReusingCpuAllocator::instance().counters(); }
int64_t reset_reuse_peak() { return ReusingCpuAllocator::instance().reset_peak(); }
#else
ReuseCpuBuffers::ReuseCpuBuffers() = default;
ReuseCpuBuffers::~ReuseCpuBuffers() = default;
ShortChunkRequests::ShortChunkRequests(int64_t, int64_t) : previous_rows_(0), previous_full_rows_(0) {}
ShortChunkRequests::~ShortChunkRequests() = default;
ReuseCounters reuse_counters() { return {false, 0, 0, 0, 0, 0}; }
int64_t reset_reuse_peak() { return 0; }
#endif

}  // namespace latentsweep::cpu
