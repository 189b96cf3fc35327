// latentsweep::traversal_codes: schemas and shared argument checks.
#include "traversal_codes.h"

#include "cpu/huge_pages.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <limits>

namespace latentsweep {

int64_t check_traversal_inputs(const at::Tensor& anchors, const at::Tensor& dims,
                               const at::Tensor& values, int64_t start,
                               std::optional<int64_t> count) {
  TORCH_CHECK(anchors.dim() == 2, "latentsweep::traversal_codes: anchors must be [A, D], got ",
              anchors.sizes());
  TORCH_CHECK(at::isFloatingType(anchors.scalar_type()),
              "latentsweep::traversal_codes: anchors must be floating point, got ",
              anchors.scalar_type());
  TORCH_CHECK(dims.dim() == 1 && dims.scalar_type() == at::kLong,
              "latentsweep::traversal_codes: dims must be a 1-D int64 tensor");
  TORCH_CHECK(values.dim() == 3, "latentsweep::traversal_codes: values must be [A, K, S], got ",
              values.sizes());
  TORCH_CHECK(values.scalar_type() == anchors.scalar_type(),
              "latentsweep::traversal_codes: values must have the anchors' dtype");
  TORCH_CHECK(dims.device() == anchors.device() && values.device() == anchors.device(),
              "latentsweep::traversal_codes: anchors, dims and values must share a device");
  const int64_t num_anchors = anchors.size(0), num_dims = dims.size(0), latent = anchors.size(1);
  TORCH_CHECK(values.size(0) == num_anchors && values.size(1) == num_dims,
              "latentsweep::traversal_codes: values must be [", num_anchors, ", ", num_dims,
              ", S], got ", values.sizes());
  // On the CPU a bad dim would write out of bounds. The CUDA kernel only compares dims with
  // column indices (never indexes with them), so it skips this check and its device sync.
  if (num_dims > 0 && dims.is_cpu()) {
    const auto range = at::aminmax(dims);
    const int64_t low = std::get<0>(range).item<int64_t>();
    const int64_t high = std::get<1>(range).item<int64_t>();
    TORCH_CHECK(low >= 0 && high < latent, "latentsweep::traversal_codes: dims must lie in [0, ",
                latent, "), got values in [", low, ", ", high, "]");
  }
  const int64_t steps = values.size(2);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  TORCH_CHECK(num_dims == 0 || steps == 0 || num_anchors <= kMax / num_dims / steps,
              "latentsweep::traversal_codes: the grid size overflows int64");
  const int64_t total = num_anchors * num_dims * steps;
  TORCH_CHECK(start >= 0 && start <= total, "latentsweep::traversal_codes: start must be in [0, ",
              total, "], got ", start);
  const int64_t rows = count.value_or(total - start);
  TORCH_CHECK(rows >= 0 && rows <= total - start, "latentsweep::traversal_codes: count must be in [0, ",
              total - start, "], got ", rows);
  TORCH_CHECK(latent == 0 || rows <= kMax / latent,
              "latentsweep::traversal_codes: count * D overflows int64");
  return rows;
}

void check_traversal_output(const at::Tensor& anchors, const at::Tensor& out, int64_t count) {
  TORCH_CHECK(out.dim() == 2 && out.size(0) == count && out.size(1) == anchors.size(1),
              "latentsweep::traversal_codes: out must be [", count, ", ", anchors.size(1),
              "], got ", out.sizes());
  TORCH_CHECK(out.scalar_type() == anchors.scalar_type() && out.device() == anchors.device(),
              "latentsweep::traversal_codes: out must have the anchors' dtype and device");
  TORCH_CHECK(out.is_contiguous(), "latentsweep::traversal_codes: out must be contiguous");
}

void traversal_codes_into(const at::Tensor& anchors, const at::Tensor& dims,
                          const at::Tensor& values, int64_t start, int64_t count, at::Tensor& out) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("latentsweep::traversal_codes_into", "")
                             .typed<void(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         int64_t, int64_t, at::Tensor&)>();
  op.call(anchors, dims, values, start, count, out);
}

// The functional form allocates and calls traversal_codes_into, which each backend registers.
static at::Tensor traversal_codes(const at::Tensor& anchors, const at::Tensor& dims,
                                  const at::Tensor& values, int64_t start,
                                  std::optional<int64_t> count) {
  const int64_t rows = check_traversal_inputs(anchors, dims, values, start, count);
  at::Tensor out = anchors.is_cpu()
                       ? cpu::empty_prefer_huge_pages({rows, anchors.size(1)}, anchors.options())
                       : at::empty({rows, anchors.size(1)}, anchors.options());
  traversal_codes_into(anchors, dims, values, start, rows, out);
  return out;
}

TORCH_LIBRARY_IMPL(latentsweep, CompositeExplicitAutograd, m) {
  m.impl("traversal_codes", &traversal_codes);
}

TORCH_LIBRARY_FRAGMENT(latentsweep, m) {
  m.def(
      "traversal_codes(Tensor anchors, Tensor dims, Tensor values, int start=0, "
      "int? count=None) -> Tensor");
  // Writes into a caller's buffer; returns nothing (see sample_prior_).
  m.def(
      "traversal_codes_into(Tensor anchors, Tensor dims, Tensor values, int start, int count, "
      "Tensor(a!) out) -> ()");
}

}  // namespace latentsweep
