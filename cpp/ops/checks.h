// Argument checks shared by the ops. Every op validates what it receives here, in C++, with
// TORCH_CHECK_VALUE / TORCH_CHECK_TYPE (ValueError / TypeError in Python), so the public
// wrappers (python/latentsweep/*.py) and torch.ops.latentsweep.* raise the same exception with
// the same text. Messages start with the public function's name and use torch's spelling of
// dtypes, layouts and shapes ("torch.float32", "torch.sparse_coo", "[3, 4]").
//
// The same checks run in each op's Meta kernel, which is what torch.compile and FakeTensorMode
// call: sizes are read as SymInts (`sym_size`), so under dynamic shapes a size is a symbol and
// a condition on it becomes a guard or a runtime assert (`holds`, as torch._check in Python)
// rather than a value. Checks of the data (a range of indices, unit lengths) run only in the
// CPU/CUDA kernels: a meta tensor has no values.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/SymBool.h>
#include <c10/core/SymInt.h>

#include <optional>
#include <string>

namespace latentsweep {

// `condition` for a check: a plain bool for real tensors; for symbolic sizes, a guard or a
// deferred runtime assert (what torch._check does), true unless the sizes traced contradict it.
// The arithmetic type of every op and backward pass: float32 for float32/float16/bfloat16
// (low precision computes in float32 and rounds once), float64 for float64.
inline at::ScalarType compute_dtype(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

inline bool holds(const c10::SymBool& condition) {
  return condition.expect_true(__FILE__, __LINE__);
}

// Whether a kernel scans the data it is given: the public ops always do (kScan); the Meta
// kernels have no data, and the internal `_*_trusted` ops serve a caller that validated the
// data once (the sweep engine, for every chunk of a grid it checked) (kSkip).
enum class DataChecks { kScan, kSkip };

// "torch.float32", as Python prints a dtype.
std::string dtype_name(at::ScalarType dtype);

// The device a tensor stands for. A real tensor's own; in a Meta kernel under FakeTensorMode
// every fake tensor reports `meta`, but its backend dispatch key still names the device it
// stands for (its type only: a fake cuda:1 reads as "cuda").
at::Device device_of(const at::Tensor& t);

// TypeError unless `t` is a dense (strided) tensor.
void check_dense(const at::Tensor& t, const char* fn, const char* name);

// TypeError unless `t` is float16, bfloat16, float32 or float64.
void check_floating(const at::Tensor& t, const char* fn, const char* name);

// ValueError unless all tensors are on one device ("all tensors must be on one device, got
// mu on cpu, logvar on meta").
void check_same_device(const char* fn, std::initializer_list<std::pair<const char*, const at::Tensor*>> tensors);

// ValueError when `out` shares memory with `input` (reading and writing the same bytes gives
// wrong rows), as torch's own out= ops refuse. Meta tensors have no memory: nothing to check.
void check_no_overlap(const at::Tensor& out, const at::Tensor& input, const char* fn,
                      const char* name);

// a * b * c of sizes >= 0, and whether it is <= limit: exact (128-bit) for plain integers;
// symbolic under dynamic shapes, where products cannot overflow. `value` is only meaningful
// when `fits` holds.
struct Product {
  c10::SymInt value;
  c10::SymBool fits;
};
Product checked_product(const c10::SymInt& a, const c10::SymInt& b, const c10::SymInt& c,
                        int64_t limit);

// The rows (start, count) of an A x K x S grid whose values are [S], [K, S] or [A, K, S]:
// checks the values' shape against the anchors [A, D] and `num_traversed` = K (`traversed`
// names them: "dims", "directions"), the range, and that count * D values of
// `bytes_per_value` fit in int64. Returns count (the rest of the grid when none is given).
c10::SymInt check_grid_rows(const char* fn, const at::Tensor& anchors, const at::Tensor& values,
                            const c10::SymInt& num_traversed, const char* traversed,
                            int64_t start, std::optional<int64_t> count, int64_t bytes_per_value);

// ValueError unless `out` is a contiguous [count, D] tensor of the anchors' dtype and device.
void check_codes_output(const char* fn, const at::Tensor& anchors, const at::Tensor& out,
                        const c10::SymInt& count);

}  // namespace latentsweep
