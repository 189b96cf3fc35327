// latentsweep::sample and latentsweep::sample_prior_: schemas and shared argument checks.
#include "sample.h"

#include <ATen/ATen.h>
#include <torch/library.h>

namespace latentsweep {

static void check_floating(const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "latentsweep: ", name,
              " must be a floating-point tensor, got ", t.scalar_type());
}

static void check_counters(int64_t rows, int64_t samples, int64_t dim, int64_t row_offset,
                           int64_t sample_offset) {
  TORCH_CHECK(row_offset >= 0 && row_offset <= kMaxRowCounter - rows,
              "latentsweep: rows offset + count must be within [0, 2^48)");
  TORCH_CHECK(sample_offset >= 0 && sample_offset <= kMaxSampleCounter - samples,
              "latentsweep: sample offset + count must be within [0, 2^47)");
  TORCH_CHECK(dim <= kMaxDimCounter, "latentsweep: dim must be below 2^34");
}

void check_sample_inputs(const at::Tensor& mu, const at::Tensor& logvar, int64_t n,
                         int64_t row_offset, int64_t sample_offset) {
  TORCH_CHECK(mu.dim() == 2, "latentsweep::sample: mu must be [N, D], got ", mu.sizes());
  TORCH_CHECK(logvar.sizes() == mu.sizes(), "latentsweep::sample: logvar must have mu's shape ",
              mu.sizes(), ", got ", logvar.sizes());
  TORCH_CHECK(logvar.device() == mu.device(), "latentsweep::sample: mu and logvar on ",
              mu.device(), " and ", logvar.device());
  TORCH_CHECK(logvar.scalar_type() == mu.scalar_type(), "latentsweep::sample: mu is ",
              mu.scalar_type(), " but logvar is ", logvar.scalar_type());
  check_floating(mu, "mu");
  TORCH_CHECK(n >= 0, "latentsweep::sample: n must be >= 0, got ", n);
  check_counters(mu.size(0), n, mu.size(1), row_offset, sample_offset);
}

void check_sample_prior_output(const at::Tensor& out, int64_t offset) {
  TORCH_CHECK(out.dim() == 2, "latentsweep::sample_prior_: out must be [n, dim], got ",
              out.sizes());
  check_floating(out, "out");
  check_counters(out.size(0), 1, out.size(1), offset, 0);
}

at::ScalarType sample_compute_dtype(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

SampleInputs prepare_sample_inputs(const at::Tensor& mu, const at::Tensor& logvar) {
  const at::ScalarType compute = sample_compute_dtype(mu.scalar_type());
  at::Tensor sd = (logvar.to(compute) * 0.5).exp_();  // one temporary, not two
  return SampleInputs{mu.to(compute).contiguous(), sd.contiguous()};
}

TORCH_LIBRARY_FRAGMENT(latentsweep, m) {
  m.def(
      "sample(Tensor mu, Tensor logvar, SymInt n, int seed=0, int row_offset=0, "
      "int sample_offset=0) -> Tensor");
  // Mutating ops return nothing: torch.compile cannot trace custom ops that return an alias.
  m.def("sample_prior_(Tensor(a!) self, int seed=0, int offset=0) -> ()");
}

}  // namespace latentsweep
