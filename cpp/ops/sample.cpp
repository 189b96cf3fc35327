// latentsweep::sample, sample_prior and sample_prior_: schemas and their argument checks.
#include "sample.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/MemoryOverlap.h>
#include <torch/library.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <initializer_list>
#include <limits>
#include <sstream>
#include <vector>

#include "checks.h"
#include "cpu/huge_pages.h"

namespace latentsweep {

// A counter offset: `offset + count` must stay within the generator's counter range.
static void check_counter(const char* fn, const char* name, int64_t offset,
                          const c10::SymInt& count, int64_t limit, const char* limit_text) {
  TORCH_CHECK_VALUE(offset >= 0, fn, ": ", name, " must be >= 0, got ", offset);
  const c10::SymInt last = limit - count;
  TORCH_CHECK_VALUE(holds(last.sym_ge(offset)), fn, ": ", name, " must be <= ", last, " (",
                    limit_text, "), got ", offset);
}

static void check_latent_size(const char* fn, const c10::SymInt& latent_size) {
  TORCH_CHECK_VALUE(holds(latent_size.sym_le(kMaxDimCounter)), fn, ": D must be <= 2**34, got ",
                    latent_size);
}

// The product of `sizes` (named by `what`, e.g. "N * n * D"), as values of the compute dtype,
// must have a size in bytes that fits int64.
static void check_output_bytes(const char* fn, const char* what, std::initializer_list<c10::SymInt> sizes,
                               at::ScalarType dtype) {
  const int64_t itemsize = dtype == at::kDouble ? 8 : 4;  // the compute dtype's
  std::vector<c10::SymInt> factors(sizes);
  while (factors.size() < 3) factors.emplace_back(1);
  const Product values = checked_product(factors[0], factors[1], factors[2],
                                         std::numeric_limits<int64_t>::max() / itemsize);
  std::ostringstream product;
  for (size_t i = 0; i < sizes.size(); ++i) product << (i ? " * " : "") << factors[i];
  TORCH_CHECK_VALUE(holds(values.fits), fn, ": ", what, " = ", product.str(),
                    " values, whose size in bytes overflows int64");
}

void check_sample_inputs(const at::Tensor& mu, const at::Tensor& logvar, const c10::SymInt& n,
                         int64_t row_offset, int64_t sample_offset) {
  const char* fn = kSampleFn;
  check_dense(mu, fn, "mu");
  check_dense(logvar, fn, "logvar");
  check_floating(mu, fn, "mu");
  check_floating(logvar, fn, "logvar");
  TORCH_CHECK_VALUE(mu.dim() == 2, fn, ": mu must be 2-D [N, D], got shape ", mu.sym_sizes());
  const bool same_rank = logvar.dim() == 2;
  TORCH_CHECK_VALUE(same_rank && holds(logvar.sym_size(0).sym_eq(mu.sym_size(0)) &
                                       logvar.sym_size(1).sym_eq(mu.sym_size(1))),
                    fn, ": logvar must have mu's shape ", mu.sym_sizes(), ", got ",
                    logvar.sym_sizes());
  TORCH_CHECK_TYPE(logvar.scalar_type() == mu.scalar_type(), fn, ": mu is ",
                   dtype_name(mu.scalar_type()), " but logvar is ",
                   dtype_name(logvar.scalar_type()), "; use one dtype");
  check_same_device(fn, {{"mu", &mu}, {"logvar", &logvar}});
  TORCH_CHECK_VALUE(holds(n.sym_ge(0)), fn, ": n must be >= 0, got ", n);
  TORCH_CHECK_VALUE(holds(n.sym_le(kMaxSampleCounter)), fn, ": n must be <= ", kMaxSampleCounter,
                    " (2**47), got ", n);
  check_counter(fn, "row_offset", row_offset, mu.sym_size(0), kMaxRowCounter, "2**48 - N");
  check_counter(fn, "sample_offset", sample_offset, n, kMaxSampleCounter, "2**47 - n");
  check_latent_size(fn, mu.sym_size(1));
  check_output_bytes(fn, "N * n * D", {mu.sym_size(0), n, mu.sym_size(1)}, mu.scalar_type());
}

void check_sample_prior_output(const at::Tensor& out, int64_t offset) {
  const char* fn = kSamplePriorInplaceFn;
  check_dense(out, fn, "self");
  check_floating(out, fn, "self");
  TORCH_CHECK_VALUE(out.dim() == 2, fn, ": self must be 2-D [n, D], got shape ", out.sym_sizes());
  // An expanded tensor's rows share memory: one draw per element cannot be written there.
  TORCH_CHECK_VALUE(at::has_internal_overlap(out) != at::MemOverlap::Yes, fn,
                    ": self has elements that share memory (an expanded tensor); draw into a "
                    "tensor of its own, e.g. self.contiguous() or torch.empty(n, D)");
  check_counter(fn, "offset", offset, out.sym_size(0), kMaxRowCounter, "2**48 - n");
  check_latent_size(fn, out.sym_size(1));
}

at::ScalarType check_sample_prior_args(const c10::SymInt& n, const c10::SymInt& latent_size,
                                       int64_t offset, std::optional<at::ScalarType> dtype) {
  const char* fn = kSamplePriorFn;
  const at::ScalarType type = dtype.value_or(c10::get_default_dtype_as_scalartype());
  TORCH_CHECK_VALUE(holds(n.sym_ge(0)), fn, ": n must be >= 0, got ", n);
  TORCH_CHECK_VALUE(holds(latent_size.sym_ge(0)), fn, ": latent_size must be >= 0, got ",
                    latent_size);
  TORCH_CHECK_VALUE(holds(n.sym_le(kMaxRowCounter)), fn, ": n must be <= ", kMaxRowCounter,
                    " (2**48), got ", n);
  check_latent_size(fn, latent_size);
  check_counter(fn, "offset", offset, n, kMaxRowCounter, "2**48 - n");
  const bool floating = type == at::kHalf || type == at::kBFloat16 || type == at::kFloat ||
                        type == at::kDouble;
  TORCH_CHECK_TYPE(floating, fn, ": dtype must be float16, bfloat16, float32 or float64, got ",
                   dtype_name(type));
  check_output_bytes(fn, "n * D", {n, latent_size}, type);
  return type;
}

// Where latentsweep has kernels: the CPU, CUDA devices when built with them, and meta (shapes).
static void check_device_usable(const char* fn, const at::Device& device) {
  if (device.is_cuda()) {
    TORCH_CHECK_VALUE(LATENTSWEEP_WITH_CUDA, fn, ": device ", device,
                      " needs latentsweep's CUDA kernels, but this build has none "
                      "(build_info()['cuda'] is False); use device='cpu' or rebuild latentsweep "
                      "against a CUDA torch");
    TORCH_CHECK_VALUE(at::hasCUDA(), fn, ": device ", device,
                      " is not available (torch.cuda.is_available() is False)");
    return;
  }
  TORCH_CHECK_VALUE(device.is_cpu() || device.is_meta(), fn, ": device must be cpu or cuda, got ",
                    device);
}

SampleInputs prepare_sample_inputs(const at::Tensor& mu, const at::Tensor& logvar) {
  const at::ScalarType compute = compute_dtype(mu.scalar_type());
  at::Tensor sd = (logvar.to(compute) * 0.5).exp_();  // one temporary, not two
  return SampleInputs{mu.to(compute).contiguous(), sd.contiguous()};
}

// The functional prior draw: checks, allocates, and fills with sample_prior_ (each backend's).
static at::Tensor sample_prior(int64_t n, int64_t latent_size, int64_t seed, int64_t offset,
                               std::optional<at::ScalarType> dtype,
                               std::optional<at::Device> device) {
  const at::ScalarType type = check_sample_prior_args(n, latent_size, offset, dtype);
  const at::Device where = device.value_or(at::kCPU);
  check_device_usable(kSamplePriorFn, where);
  const auto options = at::TensorOptions().dtype(type).device(where);
  at::Tensor out = where.is_cpu() ? cpu::empty_prefer_huge_pages({n, latent_size}, options)
                                  : at::empty({n, latent_size}, options);
  static const auto fill = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("latentsweep::sample_prior_", "")
                               .typed<void(at::Tensor&, int64_t, int64_t)>();
  fill.call(out, seed, offset);
  return out;
}

// Meta kernels (torch.compile, FakeTensorMode): the same checks, sizes as SymInts, no data.
static at::Tensor sample_meta(const at::Tensor& mu, const at::Tensor& logvar, c10::SymInt n,
                              int64_t /*seed*/, int64_t row_offset, int64_t sample_offset) {
  check_sample_inputs(mu, logvar, n, row_offset, sample_offset);
  return at::empty_symint({mu.sym_size(0), n, mu.sym_size(1)}, mu.options());
}

static at::Tensor sample_prior_meta(c10::SymInt n, c10::SymInt latent_size, int64_t /*seed*/,
                                    int64_t offset, std::optional<at::ScalarType> dtype,
                                    std::optional<at::Device> /*device*/) {
  // FakeTensorMode passes device=meta and gives the result the device asked for.
  const at::ScalarType type = check_sample_prior_args(n, latent_size, offset, dtype);
  return at::empty_symint({n, latent_size}, at::TensorOptions().dtype(type).device(at::kMeta));
}

static void sample_prior_inplace_meta(at::Tensor& self, int64_t /*seed*/, int64_t offset) {
  check_sample_prior_output(self, offset);
}

TORCH_LIBRARY_IMPL(latentsweep, Meta, m) {
  m.impl("sample", &sample_meta);
  m.impl("sample_prior", &sample_prior_meta);
  m.impl("sample_prior_", &sample_prior_inplace_meta);
}

TORCH_LIBRARY_IMPL(latentsweep, CompositeExplicitAutograd, m) {
  m.impl("sample_prior", &sample_prior);
}

TORCH_LIBRARY_FRAGMENT(latentsweep, m) {
  m.def(
      "sample(Tensor mu, Tensor logvar, SymInt n, int seed=0, int row_offset=0, "
      "int sample_offset=0) -> Tensor");
  m.def(
      "sample_prior(SymInt n, SymInt latent_size, int seed=0, int offset=0, *, "
      "ScalarType? dtype=None, Device? device=None) -> Tensor");
  // Mutating ops return nothing: torch.compile cannot trace custom ops that return an alias.
  m.def("sample_prior_(Tensor(a!) self, int seed=0, int offset=0) -> ()");
}

}  // namespace latentsweep
