// latentsweep::direction_codes: schemas, the argument checks and the low-precision path.
#include "direction_codes.h"

#include "checks.h"
#include "cpu/huge_pages.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <iomanip>
#include <sstream>

namespace latentsweep {

namespace {

// How far from 1 a direction's norm may be: sqrt(machine epsilon) of its dtype, far above the
// rounding of a normalised vector and far below any meaningful scale.
double unit_tolerance(at::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf: return std::sqrt(std::ldexp(1.0, -10));
    case at::kBFloat16: return std::sqrt(std::ldexp(1.0, -7));
    case at::kFloat: return std::sqrt(std::ldexp(1.0, -23));
    default: return std::sqrt(std::ldexp(1.0, -52));
  }
}

// A scan of the directions' values (not their shapes): each row has unit length.
void check_unit_length(const at::Tensor& directions) {
  if (directions.size(0) == 0) return;
  const at::Tensor norms = at::linalg_vector_norm(directions.to(at::kDouble), 2, {1});
  const at::Tensor off = ((norms - 1.0).abs() <= unit_tolerance(directions.scalar_type())).logical_not();
  if (!off.any().item<bool>()) return;
  const int64_t first = off.nonzero()[0][0].item<int64_t>();
  // Every digit that tells the norm from 1 (the default 6 printed a norm of 1 + 1e-6 as "1").
  std::ostringstream norm;
  norm << std::setprecision(17) << norms[first].item<double>();
  TORCH_CHECK_VALUE(false, kDirectionCodesFn,
                    ": directions must have unit length (use latentsweep.unit_directions); "
                    "direction ", first, " has norm ", norm.str(), ", further from 1 than ",
                    unit_tolerance(directions.scalar_type()), " (sqrt(eps) of ", dtype_name(directions.scalar_type()), ")");
}

}  // namespace

c10::SymInt check_direction_inputs(const at::Tensor& anchors, const at::Tensor& directions,
                                   const at::Tensor& values, int64_t start,
                                   std::optional<int64_t> count, DataChecks data) {
  const char* fn = kDirectionCodesFn;
  check_dense(anchors, fn, "anchors");
  check_dense(directions, fn, "directions");
  check_dense(values, fn, "values");
  check_floating(anchors, fn, "anchors");
  TORCH_CHECK_VALUE(anchors.dim() == 2, fn, ": anchors must be 2-D [A, D], got shape ",
                    anchors.sym_sizes());
  TORCH_CHECK_TYPE(directions.scalar_type() == anchors.scalar_type(), fn,
                   ": directions must have the anchors' dtype ", dtype_name(anchors.scalar_type()),
                   ", got ", dtype_name(directions.scalar_type()));
  TORCH_CHECK_VALUE(directions.dim() == 2 &&
                        holds(directions.sym_size(1).sym_eq(anchors.sym_size(1))),
                    fn, ": directions must be 2-D [K, D] with D = ", anchors.sym_size(1),
                    ", got shape ", directions.sym_sizes());
  TORCH_CHECK_TYPE(values.scalar_type() == anchors.scalar_type(), fn,
                   ": values must have the anchors' dtype ", dtype_name(anchors.scalar_type()),
                   ", got ", dtype_name(values.scalar_type()));
  check_same_device(fn, {{"anchors", &anchors}, {"directions", &directions}, {"values", &values}});
  // Low precision computes in a float32 buffer: bound the bytes by 4 per value at least.
  c10::SymInt rows = check_grid_rows(fn, anchors, values, directions.sym_size(0), "directions",
                                     start, count, std::max<int64_t>(anchors.element_size(), 4));
  if (data == DataChecks::kScan) check_unit_length(directions);
  return rows;
}

void check_direction_output(const at::Tensor& anchors, const at::Tensor& directions,
                            const at::Tensor& values, const at::Tensor& out,
                            const c10::SymInt& count) {
  const char* fn = kDirectionCodesFn;
  check_codes_output(fn, anchors, out, count);
  check_no_overlap(out, anchors, fn, "anchors");
  check_no_overlap(out, directions, fn, "directions");
  check_no_overlap(out, values, fn, "values");
}

namespace {

// `values` in float32 without materialising its broadcast (zero-stride) dimensions.
at::Tensor to_float_keeping_broadcast(const at::Tensor& values) {
  at::Tensor distinct = values;
  for (int64_t i = 0; i < values.dim(); ++i) {
    if (values.stride(i) == 0 && values.size(i) > 1) distinct = distinct.narrow(i, 0, 1);
  }
  return distinct.to(at::kFloat).expand(values.sizes());
}

}  // namespace

void run_direction_codes(const at::Tensor& anchors, const at::Tensor& directions,
                         const at::Tensor& values, int64_t start, std::optional<int64_t> count,
                         at::Tensor& out, DataChecks data, DirectionKernel kernel) {
  const int64_t rows =
      check_direction_inputs(anchors, directions, values, start, count, data).expect_int();
  check_direction_output(anchors, directions, values, out, rows);
  if (rows == 0 || anchors.size(1) == 0) return;
  const int64_t num_dirs = directions.size(0), steps = values.size(-1);
  const auto dtype = anchors.scalar_type();
  const bool computed_in_place = dtype == at::kFloat || dtype == at::kDouble;
  if (computed_in_place && anchors.is_contiguous()) {  // (the sweeps' every chunk: nothing to copy)
    return kernel(anchors, directions.contiguous(), values.expand({anchors.size(0), num_dirs, steps}), start, rows,
                  out);
  }
  // Only the anchors whose rows are requested: a chunk of a large grid copies (converts) a chunk.
  const AnchorSpan span = anchors_of_rows(start, rows, num_dirs * steps);
  const at::Tensor anchors_used = anchors.narrow(0, span.first, span.number);
  const at::Tensor grid_values =
      values.expand({anchors.size(0), num_dirs, steps}).narrow(0, span.first, span.number);
  const int64_t first_row = start - span.first * num_dirs * steps;
  if (computed_in_place) {
    return kernel(anchors_used.contiguous(), directions.contiguous(), grid_values, first_row, rows, out);
  }
  at::Tensor out_f = at::empty(out.sizes(), out.options().dtype(at::kFloat));
  kernel(anchors_used.to(at::kFloat).contiguous(), directions.to(at::kFloat).contiguous(),
         to_float_keeping_broadcast(grid_values), first_row, rows, out_f);
  out.copy_(out_f);
}

void trusted_direction_codes_into(const at::Tensor& anchors, const at::Tensor& directions,
                                  const at::Tensor& values, int64_t start, int64_t count,
                                  at::Tensor& out) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("latentsweep::_direction_codes_into_trusted", "")
                             .typed<void(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         int64_t, std::optional<int64_t>, at::Tensor&)>();
  op.call(anchors, directions, values, start, count, out);
}

namespace {

// The functional form checks (scanning the directions once) and allocates; each backend's
// trusted kernel writes the rows.
at::Tensor direction_codes(const at::Tensor& anchors, const at::Tensor& directions,
                           const at::Tensor& values, int64_t start, std::optional<int64_t> count) {
  const int64_t rows =
      check_direction_inputs(anchors, directions, values, start, count, DataChecks::kScan)
          .expect_int();
  at::Tensor out = anchors.is_cpu()
                       ? cpu::empty_prefer_huge_pages({rows, anchors.size(1)}, anchors.options())
                       : at::empty({rows, anchors.size(1)}, anchors.options());
  trusted_direction_codes_into(anchors, directions, values, start, rows, out);
  return out;
}

// Meta kernels (torch.compile, FakeTensorMode): the same checks, sizes as SymInts, no data.
at::Tensor direction_codes_meta(const at::Tensor& anchors, const at::Tensor& directions,
                                const at::Tensor& values, int64_t start,
                                std::optional<int64_t> count) {
  const c10::SymInt rows =
      check_direction_inputs(anchors, directions, values, start, count, DataChecks::kSkip);
  return at::empty_symint({rows, anchors.sym_size(1)}, anchors.options());
}

void direction_codes_into_meta(const at::Tensor& anchors, const at::Tensor& directions,
                               const at::Tensor& values, int64_t start,
                               std::optional<int64_t> count, at::Tensor& out) {
  const c10::SymInt rows =
      check_direction_inputs(anchors, directions, values, start, count, DataChecks::kSkip);
  check_direction_output(anchors, directions, values, out, rows);
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, CompositeExplicitAutograd, m) {
  m.impl("direction_codes", &direction_codes);
}

TORCH_LIBRARY_IMPL(latentsweep, Meta, m) {
  m.impl("direction_codes", &direction_codes_meta);
  m.impl("direction_codes_into", &direction_codes_into_meta);
  m.impl("_direction_codes_into_trusted", &direction_codes_into_meta);
}

TORCH_LIBRARY_FRAGMENT(latentsweep, m) {
  m.def(
      "direction_codes(Tensor anchors, Tensor directions, Tensor values, int start=0, "
      "int? count=None) -> Tensor");
  // Writes into a caller's buffer; returns nothing (see sample_prior_). count=None: to the end.
  m.def(
      "direction_codes_into(Tensor anchors, Tensor directions, Tensor values, int start, "
      "int? count, Tensor(a!) out) -> ()");
  // Internal: direction_codes_into without the scan of the directions' unit length, for
  // callers that validated the grid once (the sweep engine's direction writer). Shapes are
  // checked.
  m.def(
      "_direction_codes_into_trusted(Tensor anchors, Tensor directions, Tensor values, "
      "int start, int? count, Tensor(a!) out) -> ()");
}

}  // namespace latentsweep
