// Autograd for latentsweep::sample: reparameterised sampling, z = mu + exp(logvar / 2) * eps,
// so dz/dmu = 1 and dz/dlogvar = exp(logvar / 2) * eps / 2 (= (z - mu) / 2).
//
// The backward pass recomputes eps from its counters (a pure function of seed, row, sample,
// dim) instead of saving it or z: nothing of size N * n * D is kept alive between the passes,
// and eps comes back in the compute dtype (float32 for float16 inputs), where z - mu would
// have lost the digits of a small standard deviation. The backward is itself differentiable
// (eps is a constant), so double backward works too.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/VariableTypeUtils.h>
#include <torch/library.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include "sample.h"

namespace latentsweep {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor call_sample(const at::Tensor& mu, const at::Tensor& logvar, const c10::SymInt& n,
                       int64_t seed, int64_t row_offset, int64_t sample_offset) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("latentsweep::sample", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymInt,
                                               int64_t, int64_t, int64_t)>();
  return op.call(mu, logvar, n, seed, row_offset, sample_offset);
}

class SampleFunction : public torch::autograd::Function<SampleFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& mu, const at::Tensor& logvar,
                            const c10::SymInt& n, int64_t seed, int64_t row_offset,
                            int64_t sample_offset) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor z = call_sample(mu, logvar, n, seed, row_offset, sample_offset);
    ctx->save_for_backward({logvar});
    ctx->saved_data["n"] = n;
    ctx->saved_data["seed"] = seed;
    ctx->saved_data["row_offset"] = row_offset;
    ctx->saved_data["sample_offset"] = sample_offset;
    return z;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor logvar = ctx->get_saved_variables()[0];
    const at::Tensor& grad = grad_outputs[0];  // [N, n, D]
    at::Tensor grad_mu, grad_logvar;
    if (grad.defined()) {
      const at::ScalarType compute = compute_dtype(logvar.scalar_type());
      if (ctx->needs_input_grad(0)) grad_mu = grad.sum(1);
      if (ctx->needs_input_grad(1)) {
        const at::Tensor zeros =
            at::zeros_symint(logvar.sym_sizes(), logvar.options().dtype(compute));
        const at::Tensor eps =
            call_sample(zeros, zeros, ctx->saved_data["n"].toSymInt(),
                        ctx->saved_data["seed"].toInt(), ctx->saved_data["row_offset"].toInt(),
                        ctx->saved_data["sample_offset"].toInt());
        const at::Tensor sd = (logvar.to(compute) * 0.5).exp();
        grad_logvar = ((grad.to(compute) * eps).sum(1) * sd * 0.5).to(logvar.scalar_type());
      }
    }
    return {grad_mu, grad_logvar, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor sample_autograd(const at::Tensor& mu, const at::Tensor& logvar, c10::SymInt n,
                           int64_t seed, int64_t row_offset, int64_t sample_offset) {
  return SampleFunction::apply(mu, logvar, n, seed, row_offset, sample_offset);
}

// The in-place prior draw records no gradients: with none registered here, a tensor that
// requires grad was overwritten while autograd kept using its old graph (the gradient through
// it came out as garbage, silently). Refused instead; the version bump is what torch's own
// in-place kernels do, so a graph that saved `self` notices it was overwritten.
void sample_prior_inplace_autograd(at::Tensor& self, int64_t seed, int64_t offset) {
  TORCH_CHECK_VALUE(!(at::GradMode::is_enabled() && self.requires_grad()), kSamplePriorInplaceFn,
                    ": self requires grad, and an in-place draw records no gradients; draw under "
                    "torch.no_grad(), or into a new tensor with latentsweep.sample_prior()");
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("latentsweep::sample_prior_", "")
                             .typed<void(at::Tensor&, int64_t, int64_t)>();
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    op.call(self, seed, offset);
  }
  torch::autograd::increment_version(self);
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, Autograd, m) {
  m.impl("sample", &sample_autograd);
  m.impl("sample_prior_", &sample_prior_inplace_autograd);
}

}  // namespace latentsweep
