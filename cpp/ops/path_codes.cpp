// latentsweep::_path_codes_into_trusted: the schema, the argument checks, the Meta kernel and
// the 16-bit path.
#include "path_codes.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <limits>

namespace latentsweep {

namespace {

void check_float64(const at::Tensor& t, const char* name) {
  check_dense(t, kPathCodesFn, name);
  TORCH_CHECK_TYPE(t.scalar_type() == at::kDouble, kPathCodesFn, ": ", name,
                   " must be torch.float64, got ", dtype_name(t.scalar_type()));
}

}  // namespace

void check_path_arguments(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                          const at::Tensor& divisors, int64_t first, int64_t count,
                          const at::Tensor& out) {
  const char* fn = kPathCodesFn;
  check_float64(start, "start");
  check_float64(end, "end");
  check_float64(weights, "weights");
  check_float64(divisors, "divisors");
  TORCH_CHECK_VALUE(start.dim() == 2, fn, ": start must be 2-D [P, D], got shape ", start.sym_sizes());
  const c10::SymInt paths = start.sym_size(0), latent = start.sym_size(1);
  TORCH_CHECK_VALUE(end.dim() == 2 && holds(end.sym_size(0).sym_eq(paths) & end.sym_size(1).sym_eq(latent)), fn,
                    ": end must have start's shape ", start.sym_sizes(), ", got ", end.sym_sizes());
  TORCH_CHECK_VALUE(weights.dim() == 3 && holds(weights.sym_size(0).sym_eq(paths) &
                                                 weights.sym_size(1).sym_eq(2) & weights.sym_size(2).sym_ge(2)),
                    fn, ": weights must be [P, 2, S] with P = ", paths, " and S >= 2, got shape ",
                    weights.sym_sizes());
  TORCH_CHECK_VALUE(divisors.dim() == 1 && holds(divisors.sym_size(0).sym_eq(paths)), fn,
                    ": divisors must be [P] with P = ", paths, ", got shape ", divisors.sym_sizes());
  check_same_device(fn, {{"start", &start}, {"end", &end}, {"weights", &weights}, {"divisors", &divisors}});
  const c10::SymInt steps = weights.sym_size(2);
  const c10::SymInt total = paths * steps;  // (no overflow: weights holds 2 * P * S values)
  TORCH_CHECK_VALUE(first >= 0, fn, ": first must be >= 0, got ", first);
  TORCH_CHECK_VALUE(holds(total.sym_ge(first)), fn, ": first must be <= ", total, " (P * S), got ",
                    first);
  const c10::SymInt rest = total - first;
  TORCH_CHECK_VALUE(count >= 0, fn, ": count must be >= 0, got ", count);
  TORCH_CHECK_VALUE(holds(rest.sym_ge(count)), fn, ": count must be <= ", rest, " (P * S - first), got ", count);
  // Rows of 16-bit types are written in a float64 buffer first: 8 bytes per value.
  const Product bytes = checked_product(count, latent, 8, std::numeric_limits<int64_t>::max());
  TORCH_CHECK_VALUE(holds(bytes.fits), fn, ": count * D = ", count, " * ", latent,
                    " values, whose size in bytes overflows int64");
  check_dense(out, fn, "out");
  check_floating(out, fn, "out");
  const at::Device device = latentsweep::device_of(start), out_device = latentsweep::device_of(out);
  TORCH_CHECK_VALUE(out.dim() == 2 && out_device == device &&
                        holds(out.sym_size(0).sym_eq(count) & out.sym_size(1).sym_eq(latent)),
                    fn, ": out must be [", count, ", ", latent, "] on ", device, ", got ", out.sym_sizes(),
                    " on ", out_device);
  TORCH_CHECK_VALUE(holds(out.sym_is_contiguous()), fn, ": out must be contiguous");
  check_no_overlap(out, start, fn, "start");
  check_no_overlap(out, end, fn, "end");
  check_no_overlap(out, weights, fn, "weights");
  check_no_overlap(out, divisors, fn, "divisors");
}

void run_path_codes(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                    const at::Tensor& divisors, int64_t first, int64_t count, at::Tensor& out,
                    PathKernel kernel) {
  check_path_arguments(start, end, weights, divisors, first, count, out);
  if (count == 0 || start.size(1) == 0) return;
  const auto dtype = out.scalar_type();
  if (dtype == at::kFloat || dtype == at::kDouble) {
    return kernel(start.contiguous(), end.contiguous(), weights, divisors, first, count, out);
  }
  at::Tensor rows = at::empty(out.sizes(), out.options().dtype(at::kDouble));
  kernel(start.contiguous(), end.contiguous(), weights, divisors, first, count, rows);
  out.copy_(rows);
}

namespace {

// Meta kernel (torch.compile, FakeTensorMode): the same checks, sizes as SymInts, no data.
void path_codes_into_meta(const at::Tensor& start, const at::Tensor& end, const at::Tensor& weights,
                          const at::Tensor& divisors, int64_t first, int64_t count, at::Tensor& out) {
  check_path_arguments(start, end, weights, divisors, first, count, out);
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, Meta, m) {
  m.impl("_path_codes_into_trusted", &path_codes_into_meta);
}

TORCH_LIBRARY_FRAGMENT(latentsweep, m) {
  // Internal: rows [first, first + count) of latentsweep.interpolate's P x 1 x S path grid
  // (row p * S + s = step s of path p) into out, from float64 endpoints and the weights and
  // divisors the PathWriter computed once with torch (cpp/latentsweep/path_grid.h). Shapes are
  // checked; the data is trusted. Returns nothing (see sample_prior_).
  m.def(
      "_path_codes_into_trusted(Tensor start, Tensor end, Tensor weights, Tensor divisors, int first, "
      "int count, Tensor(a!) out) -> ()");
}

}  // namespace latentsweep
