// latentsweep::direction_codes: schemas, argument checks and the low-precision path.
#include "direction_codes.h"

#include "cpu/huge_pages.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <limits>

namespace latentsweep {

#define LS_DIRECTION_PREFIX "latentsweep::direction_codes: "

int64_t check_direction_inputs(const at::Tensor& anchors, const at::Tensor& directions,
                               const at::Tensor& values, int64_t start,
                               std::optional<int64_t> count) {
  TORCH_CHECK_VALUE(anchors.dim() == 2, LS_DIRECTION_PREFIX "anchors must be [A, D], got ",
                    anchors.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(anchors.scalar_type()),
                   LS_DIRECTION_PREFIX "anchors must be floating point, got ", anchors.scalar_type());
  TORCH_CHECK_VALUE(directions.dim() == 2 && directions.size(1) == anchors.size(1),
                    LS_DIRECTION_PREFIX "directions must be [K, D=", anchors.size(1), "], got ",
                    directions.sizes());
  TORCH_CHECK_TYPE(directions.scalar_type() == anchors.scalar_type(),
                   LS_DIRECTION_PREFIX "directions must have the anchors' dtype ",
                   anchors.scalar_type(), ", got ", directions.scalar_type());
  TORCH_CHECK_VALUE(values.dim() == 3, LS_DIRECTION_PREFIX "values must be [A, K, S], got ",
                    values.sizes());
  TORCH_CHECK_TYPE(values.scalar_type() == anchors.scalar_type(),
                   LS_DIRECTION_PREFIX "values must have the anchors' dtype ",
                   anchors.scalar_type(), ", got ", values.scalar_type());
  TORCH_CHECK_VALUE(directions.device() == anchors.device() && values.device() == anchors.device(),
                    LS_DIRECTION_PREFIX "anchors, directions and values must share a device");
  const int64_t num_anchors = anchors.size(0), num_dims = directions.size(0);
  TORCH_CHECK_VALUE(values.size(0) == num_anchors && values.size(1) == num_dims,
                    LS_DIRECTION_PREFIX "values must be [", num_anchors, ", ", num_dims,
                    ", S], got ", values.sizes());
  const int64_t steps = values.size(2), latent = anchors.size(1);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  TORCH_CHECK_VALUE(num_dims == 0 || steps == 0 || num_anchors <= kMax / num_dims / steps,
                    LS_DIRECTION_PREFIX "the grid size overflows int64");
  const int64_t total = num_anchors * num_dims * steps;
  TORCH_CHECK_VALUE(start >= 0 && start <= total, LS_DIRECTION_PREFIX "start must be in [0, ",
                    total, "], got ", start);
  const int64_t rows = count.value_or(total - start);
  TORCH_CHECK_VALUE(rows >= 0 && rows <= total - start, LS_DIRECTION_PREFIX "count must be in [0, ",
                    total - start, "], got ", rows);
  TORCH_CHECK_VALUE(latent == 0 || rows <= kMax / latent / 8,
                    LS_DIRECTION_PREFIX "count * D overflows int64 bytes");
  return rows;
}

void check_direction_output(const at::Tensor& anchors, const at::Tensor& out, int64_t count) {
  TORCH_CHECK_VALUE(out.dim() == 2 && out.size(0) == count && out.size(1) == anchors.size(1),
                    LS_DIRECTION_PREFIX "out must be [", count, ", ", anchors.size(1), "], got ",
                    out.sizes());
  TORCH_CHECK_VALUE(out.scalar_type() == anchors.scalar_type() && out.device() == anchors.device(),
                    LS_DIRECTION_PREFIX "out must have the anchors' dtype and device");
  TORCH_CHECK_VALUE(out.is_contiguous(), LS_DIRECTION_PREFIX "out must be contiguous");
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
                         const at::Tensor& values, int64_t start, int64_t count, at::Tensor& out,
                         DirectionKernel kernel) {
  const int64_t rows = check_direction_inputs(anchors, directions, values, start, count);
  check_direction_output(anchors, out, rows);
  if (rows == 0 || anchors.size(1) == 0) return;
  const auto dtype = anchors.scalar_type();
  if (dtype == at::kFloat || dtype == at::kDouble) {
    return kernel(anchors.contiguous(), directions.contiguous(), values, start, rows, out);
  }
  // Only the anchors whose rows are requested: a chunk of a large grid converts a chunk.
  const int64_t per_anchor = directions.size(0) * values.size(2);
  const int64_t first = start / per_anchor, last = (start + rows - 1) / per_anchor;
  const at::Tensor anchors_f = anchors.narrow(0, first, last - first + 1).to(at::kFloat).contiguous();
  const at::Tensor values_f = to_float_keeping_broadcast(values.narrow(0, first, last - first + 1));
  at::Tensor out_f = at::empty(out.sizes(), out.options().dtype(at::kFloat));
  kernel(anchors_f, directions.to(at::kFloat).contiguous(), values_f, start - first * per_anchor,
         rows, out_f);
  out.copy_(out_f);
}

static void direction_codes_into(const at::Tensor& anchors, const at::Tensor& directions,
                                 const at::Tensor& values, int64_t start, int64_t count,
                                 at::Tensor& out) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("latentsweep::direction_codes_into", "")
                             .typed<void(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         int64_t, int64_t, at::Tensor&)>();
  op.call(anchors, directions, values, start, count, out);
}

// The functional form allocates and calls direction_codes_into, which each backend registers.
static at::Tensor direction_codes(const at::Tensor& anchors, const at::Tensor& directions,
                                  const at::Tensor& values, int64_t start,
                                  std::optional<int64_t> count) {
  const int64_t rows = check_direction_inputs(anchors, directions, values, start, count);
  at::Tensor out = anchors.is_cpu()
                       ? cpu::empty_prefer_huge_pages({rows, anchors.size(1)}, anchors.options())
                       : at::empty({rows, anchors.size(1)}, anchors.options());
  direction_codes_into(anchors, directions, values, start, rows, out);
  return out;
}

TORCH_LIBRARY_IMPL(latentsweep, CompositeExplicitAutograd, m) {
  m.impl("direction_codes", &direction_codes);
}

TORCH_LIBRARY_FRAGMENT(latentsweep, m) {
  m.def(
      "direction_codes(Tensor anchors, Tensor directions, Tensor values, int start=0, "
      "int? count=None) -> Tensor");
  // Writes into a caller's buffer; returns nothing (see sample_prior_).
  m.def(
      "direction_codes_into(Tensor anchors, Tensor directions, Tensor values, int start, "
      "int count, Tensor(a!) out) -> ()");
}

#undef LS_DIRECTION_PREFIX

}  // namespace latentsweep
