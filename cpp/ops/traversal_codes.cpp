// latentsweep::traversal_codes: schemas and shared argument checks.
#include "traversal_codes.h"

#include "checks.h"
#include "cpu/huge_pages.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <limits>

namespace latentsweep {

namespace {

// Indexes the anchors' columns: checked on every device (a bad dim is silent garbage on CUDA
// and an out-of-bounds write on the CPU). A reduction and a sync: once per public call.
void check_dims_range(const at::Tensor& dims, int64_t latent) {
  if (dims.numel() == 0) return;
  const auto range = at::aminmax(dims);
  const int64_t low = std::get<0>(range).item<int64_t>();
  const int64_t high = std::get<1>(range).item<int64_t>();
  TORCH_CHECK_VALUE(low >= 0 && high < latent, kTraversalCodesFn, ": dims must lie in [0, ",
                    latent, ") for D=", latent, ", got values in [", low, ", ", high, "]");
}

}  // namespace

c10::SymInt check_traversal_inputs(const at::Tensor& anchors, const at::Tensor& dims,
                                   const at::Tensor& values, int64_t start,
                                   std::optional<int64_t> count, DataChecks data) {
  const char* fn = kTraversalCodesFn;
  check_dense(anchors, fn, "anchors");
  check_dense(dims, fn, "dims");
  check_dense(values, fn, "values");
  check_floating(anchors, fn, "anchors");
  TORCH_CHECK_VALUE(anchors.dim() == 2, fn, ": anchors must be 2-D [A, D], got shape ",
                    anchors.sym_sizes());
  TORCH_CHECK_TYPE(dims.scalar_type() == at::kLong, fn, ": dims must hold int64 integers, got ",
                   dtype_name(dims.scalar_type()));
  TORCH_CHECK_VALUE(dims.dim() == 1, fn, ": dims must be 1-D [K], got shape ", dims.sym_sizes());
  TORCH_CHECK_TYPE(values.scalar_type() == anchors.scalar_type(), fn,
                   ": values must have the anchors' dtype ", dtype_name(anchors.scalar_type()),
                   ", got ", dtype_name(values.scalar_type()));
  check_same_device(fn, {{"anchors", &anchors}, {"dims", &dims}, {"values", &values}});
  c10::SymInt rows = check_grid_rows(fn, anchors, values, dims.sym_size(0), "dims", start, count,
                                     anchors.element_size());
  if (data == DataChecks::kScan) check_dims_range(dims, anchors.size(1));
  return rows;
}

void check_traversal_output(const at::Tensor& anchors, const at::Tensor& dims,
                            const at::Tensor& values, const at::Tensor& out,
                            const c10::SymInt& count) {
  const char* fn = kTraversalCodesFn;
  check_codes_output(fn, anchors, out, count);
  check_no_overlap(out, anchors, fn, "anchors");
  check_no_overlap(out, dims, fn, "dims");
  check_no_overlap(out, values, fn, "values");
}

at::Tensor values_as_grid(const at::Tensor& anchors, const at::Tensor& dims,
                          const at::Tensor& values) {
  return values.expand({anchors.size(0), dims.size(0), values.size(-1)});
}

void run_traversal_codes(const at::Tensor& anchors, const at::Tensor& dims,
                         const at::Tensor& values, int64_t start, std::optional<int64_t> count,
                         at::Tensor& out, DataChecks data, TraversalKernel kernel) {
  const int64_t rows =
      check_traversal_inputs(anchors, dims, values, start, count, data).expect_int();
  check_traversal_output(anchors, dims, values, out, rows);
  if (rows == 0 || anchors.size(1) == 0) return;
  if (anchors.is_contiguous()) return kernel(anchors, dims, values, start, rows, out);  // read in place
  // The kernel copies strided anchors contiguous: only those the rows come from.
  const AnchorSpan span = anchors_of_rows(start, rows, dims.size(0) * values.size(-1));
  kernel(anchors.narrow(0, span.first, span.number), dims,
         values_as_grid(anchors, dims, values).narrow(0, span.first, span.number),
         start - span.first * dims.size(0) * values.size(-1), rows, out);
}

void trusted_traversal_codes_into(const at::Tensor& anchors, const at::Tensor& dims,
                                  const at::Tensor& values, int64_t start, int64_t count,
                                  at::Tensor& out) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("latentsweep::_traversal_codes_into_trusted", "")
                             .typed<void(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         int64_t, std::optional<int64_t>, at::Tensor&)>();
  op.call(anchors, dims, values, start, count, out);
}

namespace {

// The functional form checks (scanning dims once) and allocates; each backend's trusted
// kernel writes the rows.
at::Tensor traversal_codes(const at::Tensor& anchors, const at::Tensor& dims,
                           const at::Tensor& values, int64_t start, std::optional<int64_t> count) {
  const int64_t rows =
      check_traversal_inputs(anchors, dims, values, start, count, DataChecks::kScan).expect_int();
  at::Tensor out = anchors.is_cpu()
                       ? cpu::empty_prefer_huge_pages({rows, anchors.size(1)}, anchors.options())
                       : at::empty({rows, anchors.size(1)}, anchors.options());
  trusted_traversal_codes_into(anchors, dims, values, start, rows, out);
  return out;
}

// Meta kernels (torch.compile, FakeTensorMode): the same checks, sizes as SymInts, no data.
at::Tensor traversal_codes_meta(const at::Tensor& anchors, const at::Tensor& dims,
                                const at::Tensor& values, int64_t start,
                                std::optional<int64_t> count) {
  const c10::SymInt rows =
      check_traversal_inputs(anchors, dims, values, start, count, DataChecks::kSkip);
  return at::empty_symint({rows, anchors.sym_size(1)}, anchors.options());
}

void traversal_codes_into_meta(const at::Tensor& anchors, const at::Tensor& dims,
                               const at::Tensor& values, int64_t start,
                               std::optional<int64_t> count, at::Tensor& out) {
  const c10::SymInt rows =
      check_traversal_inputs(anchors, dims, values, start, count, DataChecks::kSkip);
  check_traversal_output(anchors, dims, values, out, rows);
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, CompositeExplicitAutograd, m) {
  m.impl("traversal_codes", &traversal_codes);
}

TORCH_LIBRARY_IMPL(latentsweep, Meta, m) {
  m.impl("traversal_codes", &traversal_codes_meta);
  m.impl("traversal_codes_into", &traversal_codes_into_meta);
  m.impl("_traversal_codes_into_trusted", &traversal_codes_into_meta);
}

TORCH_LIBRARY_FRAGMENT(latentsweep, m) {
  m.def(
      "traversal_codes(Tensor anchors, Tensor dims, Tensor values, int start=0, "
      "int? count=None) -> Tensor");
  // Writes into a caller's buffer; returns nothing (see sample_prior_). count=None: to the end.
  m.def(
      "traversal_codes_into(Tensor anchors, Tensor dims, Tensor values, int start, int? count, "
      "Tensor(a!) out) -> ()");
  // Internal: traversal_codes_into without the scan of the dims' range, for callers that
  // validated the grid once (the sweep engine writes every chunk with it). Shapes are checked.
  m.def(
      "_traversal_codes_into_trusted(Tensor anchors, Tensor dims, Tensor values, int start, "
      "int? count, Tensor(a!) out) -> ()");
}

}  // namespace latentsweep
