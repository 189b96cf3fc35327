// Shared by the CPU and CUDA registrations of latentsweep::traversal_codes.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "checks.h"
#include "latentsweep/traversal_grid.h"

namespace latentsweep {

// latentsweep::_traversal_codes_into_trusted through the dispatcher (the CPU or CUDA kernel):
// rows of a grid whose dims the caller validated (the sweep engine, and the functional form
// after its own checks). Shapes are still checked; the dims' range is not scanned again.
void trusted_traversal_codes_into(const at::Tensor& anchors, const at::Tensor& dims,
                                  const at::Tensor& values, int64_t start, int64_t count,
                                  at::Tensor& out);

inline constexpr const char* kTraversalCodesFn = "latentsweep.traversal_codes";

// The only checks of traversal_codes' arguments (ValueError / TypeError; see checks.h), run
// by every backend's kernel and the Meta kernels; `data` = kScan also scans the dims' range
// (a reduction and a device sync), which the Meta kernels and the trusted op skip.
// Returns the number of rows to write (count, or to the end).
c10::SymInt check_traversal_inputs(const at::Tensor& anchors, const at::Tensor& dims,
                                   const at::Tensor& values, int64_t start,
                                   std::optional<int64_t> count, DataChecks data);
void check_traversal_output(const at::Tensor& anchors, const at::Tensor& dims,
                            const at::Tensor& values, const at::Tensor& out,
                            const c10::SymInt& count);

// A backend's kernel: writes rows [start, start + count) into out, all checked.
using TraversalKernel = void (*)(const at::Tensor& anchors, const at::Tensor& dims,
                                 const at::Tensor& values, int64_t start, int64_t count,
                                 at::Tensor& out);

// traversal_codes_into (kScan) and _traversal_codes_into_trusted (kSkip) on a backend:
// checks, then runs `kernel` unless there is nothing to write.
void run_traversal_codes(const at::Tensor& anchors, const at::Tensor& dims,
                         const at::Tensor& values, int64_t start, std::optional<int64_t> count,
                         at::Tensor& out, DataChecks data, TraversalKernel kernel);

// The two registrations of a backend: `m.impl("traversal_codes_into",
// &traversal_codes_into_with<DataChecks::kScan, &my_kernel>)`, and kSkip for the trusted op.
template <DataChecks data, TraversalKernel kernel>
void traversal_codes_into_with(const at::Tensor& anchors, const at::Tensor& dims,
                               const at::Tensor& values, int64_t start,
                               std::optional<int64_t> count, at::Tensor& out) {
  run_traversal_codes(anchors, dims, values, start, count, out, data, kernel);
}

// values [S], [K, S] or [A, K, S] as an [A, K, S] view (zero strides where broadcast).
at::Tensor values_as_grid(const at::Tensor& anchors, const at::Tensor& dims,
                          const at::Tensor& values);

// Reinterprets the tensors as words of their element size; `anchors` must be contiguous and
// `values` [A, K, S] (values_as_grid).
template <typename Word>
TraversalGrid<Word> make_traversal_grid(const at::Tensor& anchors, const at::Tensor& dims,
                                        const at::Tensor& values, at::Tensor& out, int64_t start,
                                        int64_t count) {
  TraversalGrid<Word> grid;
  grid.anchors = static_cast<const Word*>(anchors.const_data_ptr());
  grid.dims = dims.const_data_ptr<int64_t>();
  grid.values = static_cast<const Word*>(values.const_data_ptr());
  grid.value_stride_anchor = values.stride(0);
  grid.value_stride_dim = values.stride(1);
  grid.value_stride_step = values.stride(2);
  grid.out = static_cast<Word*>(out.data_ptr());
  grid.num_anchors = anchors.size(0);
  grid.latent_dim = anchors.size(1);
  grid.num_dims = values.size(1);
  grid.num_steps = values.size(2);
  grid.start = start;
  grid.count = count;
  return grid;
}

// Calls fn.template operator()<Word>() with the unsigned word type of the element size.
template <typename Fn>
void dispatch_word(at::ScalarType dtype, Fn&& fn) {
  switch (c10::elementSize(dtype)) {
    case 2: return fn.template operator()<uint16_t>();
    case 4: return fn.template operator()<uint32_t>();
    case 8: return fn.template operator()<uint64_t>();
    default: TORCH_CHECK_TYPE(false, kTraversalCodesFn, ": unsupported dtype ", dtype);
  }
}

}  // namespace latentsweep
