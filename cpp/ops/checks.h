// Argument checks shared by the ops. Every op validates what it receives here, in C++, with
// TORCH_CHECK_VALUE / TORCH_CHECK_TYPE (ValueError / TypeError in Python), so the public
// wrappers (python/latentsweep/*.py) and torch.ops.latentsweep.* raise the same exception with
// the same text. Messages start with the public function's name and use torch's spelling of
// dtypes, layouts and shapes ("torch.float32", "torch.sparse_coo", "[3, 4]").
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>

namespace latentsweep {

// "torch.float32", as Python prints a dtype.
std::string dtype_name(at::ScalarType dtype);

// TypeError unless `t` is a dense (strided) tensor.
void check_dense(const at::Tensor& t, const char* fn, const char* name);

// TypeError unless `t` is float16, bfloat16, float32 or float64.
void check_floating(const at::Tensor& t, const char* fn, const char* name);

// ValueError unless all tensors are on one device ("all tensors must be on one device, got
// mu on cpu, logvar on meta").
void check_same_device(const char* fn, std::initializer_list<std::pair<const char*, const at::Tensor*>> tensors);

// ValueError when `out` shares memory with `input` (reading and writing the same bytes gives
// wrong rows), as torch's own out= ops refuse.
void check_no_overlap(const at::Tensor& out, const at::Tensor& input, const char* fn,
                      const char* name);

// a * b * c as an exact integer, or -1 when it exceeds int64.
int64_t checked_product(int64_t a, int64_t b, int64_t c);

// The rows (start, count) of an A x K x S grid whose values are [S], [K, S] or [A, K, S]:
// checks the values' shape against the anchors [A, D] and `num_traversed` = K (`traversed`
// names them: "dims", "directions"), the range, and that count * D values of
// `bytes_per_value` fit in int64. Returns count (the rest of the grid when none is given).
int64_t check_grid_rows(const char* fn, const at::Tensor& anchors, const at::Tensor& values,
                        int64_t num_traversed, const char* traversed, int64_t start,
                        std::optional<int64_t> count, int64_t bytes_per_value);

// ValueError unless `out` is a contiguous [count, D] tensor of the anchors' dtype and device.
void check_codes_output(const char* fn, const at::Tensor& anchors, const at::Tensor& out,
                        int64_t count);

}  // namespace latentsweep
