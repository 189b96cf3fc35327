// Shared by the CPU and CUDA registrations of latentsweep::sample and sample_prior_.
#pragma once

#include <ATen/ATen.h>

#include "checks.h"
#include "latentsweep/sample_problem.h"

namespace latentsweep {

// The public names that start every message (see checks.h).
inline constexpr const char* kSampleFn = "latentsweep.sample";
inline constexpr const char* kSamplePriorFn = "latentsweep.sample_prior";
inline constexpr const char* kSamplePriorInplaceFn = "latentsweep.sample_prior_";

// The only checks of sample's and sample_prior's arguments (ValueError / TypeError), run by
// every backend's kernel and the Meta kernels (sizes as SymInts, see checks.h).
void check_sample_inputs(const at::Tensor& mu, const at::Tensor& logvar, const c10::SymInt& n,
                         int64_t row_offset, int64_t sample_offset);
void check_sample_prior_output(const at::Tensor& out, int64_t offset);
// sample_prior's sizes, offset and dtype; returns the dtype (the default one when none).
at::ScalarType check_sample_prior_args(const c10::SymInt& n, const c10::SymInt& latent_size,
                                       int64_t offset, std::optional<at::ScalarType> dtype);

// The contiguous mean and standard deviation, in the compute dtype.
struct SampleInputs {
  at::Tensor mu, sd;
};
SampleInputs prepare_sample_inputs(const at::Tensor& mu, const at::Tensor& logvar);

template <typename T>
SampleProblem<T> make_sample_problem(const SampleInputs* inputs, at::Tensor& out, int64_t rows,
                                     int64_t samples, int64_t latent_size, int64_t seed,
                                     int64_t row_offset, int64_t sample_offset,
                                     NormalStream stream) {
  SampleProblem<T> p;
  p.mu = inputs ? inputs->mu.data_ptr<T>() : nullptr;
  p.sd = inputs ? inputs->sd.data_ptr<T>() : nullptr;
  p.out = out.data_ptr<T>();
  p.rows = rows;
  p.samples = samples;
  p.latent_size = latent_size;
  p.seed = static_cast<uint64_t>(seed);  // Python passes seeds >= 2^63 wrapped to negative
  p.row_offset = row_offset;
  p.sample_offset = sample_offset;
  p.stream = stream;
  return p;
}

// Fills `out` (compute dtype, contiguous) by calling fill(problem) with a SampleProblem of
// float or double. `fill` is what the CPU and CUDA registrations provide: that call, and
// fill.empty(sizes, options) to allocate results.
template <typename Fill>
void fill_samples(const SampleInputs* inputs, at::Tensor& out, int64_t rows, int64_t samples,
                  int64_t latent_size, int64_t seed, int64_t row_offset, int64_t sample_offset,
                  NormalStream stream, Fill&& fill) {
  if (out.numel() == 0) return;
  if (out.scalar_type() == at::kDouble) {
    fill(make_sample_problem<double>(inputs, out, rows, samples, latent_size, seed, row_offset,
                                     sample_offset, stream));
  } else {
    fill(make_sample_problem<float>(inputs, out, rows, samples, latent_size, seed, row_offset,
                                    sample_offset, stream));
  }
}

// latentsweep::sample on any backend.
template <typename Fill>
at::Tensor sample_with(const at::Tensor& mu, const at::Tensor& logvar, int64_t n, int64_t seed,
                       int64_t row_offset, int64_t sample_offset, Fill&& fill) {
  check_sample_inputs(mu, logvar, n, row_offset, sample_offset);
  const int64_t rows = mu.size(0), latent_size = mu.size(1);
  // Nothing to draw: no copies of mu and of the SD (they can be far larger than the result).
  if (rows == 0 || n == 0 || latent_size == 0) return at::empty({rows, n, latent_size}, mu.options());
  const SampleInputs inputs = prepare_sample_inputs(mu, logvar);
  at::Tensor out = fill.empty({rows, n, latent_size}, inputs.mu.options());
  fill_samples(&inputs, out, rows, n, latent_size, seed, row_offset, sample_offset,
               NormalStream::kPosterior, fill);
  return out.to(mu.scalar_type());  // float16/bfloat16: computed in float32, rounded once
}

// latentsweep::sample_prior_ on any backend.
template <typename Fill>
void sample_prior_with(at::Tensor& self, int64_t seed, int64_t offset, Fill&& fill) {
  check_sample_prior_output(self, offset);
  const at::ScalarType compute = compute_dtype(self.scalar_type());
  const bool direct = self.scalar_type() == compute && self.is_contiguous();
  at::Tensor out = direct ? self : fill.empty(self.sizes(), self.options().dtype(compute));
  fill_samples(nullptr, out, self.size(0), 1, self.size(1), seed, offset, 0, NormalStream::kPrior,
               fill);
  if (!direct) self.copy_(out);
}

}  // namespace latentsweep
