#include "statistics.h"

#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>  // at::internal::GRAIN_SIZE
#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>
#include <vector>

#include "cpu/statistics_kernel.h"
#include "ops/cpu/capability.h"

namespace latentsweep {

SweepStatistics::SweepStatistics(const at::Tensor& anchor_outputs, const at::Tensor& values) {
  TORCH_CHECK(anchor_outputs.dim() == 2, "SweepStatistics: anchor_outputs must be [A, F]");
  TORCH_CHECK(values.dim() == 3 && values.size(0) == anchor_outputs.size(0),
              "SweepStatistics: values must be [A, K, S] with the anchors' A");
  num_anchors_ = values.size(0);
  num_dims_ = values.size(1);
  num_steps_ = values.size(2);
  features_ = anchor_outputs.size(1);
  const auto device = anchor_outputs.device();
  const auto precision = anchor_outputs.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  anchor_outputs_ = anchor_outputs.to(precision).contiguous();
  // Only the first and last steps, [A, K], in float64 (not a float64 copy of every value).
  const at::Tensor range = (values.select(2, num_steps_ - 1).to(device, at::kDouble) -
                            values.select(2, 0).to(device, at::kDouble)).abs();
  // A traversal whose values do not move has no slope: it contributes nothing.
  inv_range_ = at::where(range > 0, range.reciprocal(), at::zeros_like(range)).contiguous();
  const auto f64 = at::TensorOptions().dtype(at::kDouble).device(device);
  sensitivity_sum_ = at::zeros({0, features_}, f64);  // (rows as units touch latents)
  dim_effect_sum_ = at::zeros({num_dims_}, f64);
  previous_ = at::zeros({features_}, anchor_outputs_.options());
  slope_ = at::zeros({features_}, anchor_outputs_.options());
}

void SweepStatistics::check_valid(const char* what) const {
  TORCH_CHECK(valid_, "SweepStatistics: ", what, " after a failed chunk; reset() the unit first");
}

at::Tensor SweepStatistics::update(const at::Tensor& outputs, int64_t start) {
  TORCH_CHECK(start == next_row_, "SweepStatistics: chunks must arrive in grid order: expected row ",
              next_row_, ", got ", start);
  TORCH_CHECK(outputs.dim() == 2 && outputs.size(1) == features_,
              "SweepStatistics: outputs must be [rows, ", features_, "], got ", outputs.sizes());
  TORCH_CHECK(start + outputs.size(0) <= total_rows(), "SweepStatistics: rows past the grid's end");
  TORCH_CHECK(outputs.device() == anchor_outputs_.device(),
              "SweepStatistics: outputs on ", outputs.device(), ", statistics on ",
              anchor_outputs_.device());
  check_valid("update");
  const at::Tensor y = outputs.to(dtype()).contiguous();
  at::Tensor effect;
  try {
    if (y.size(0) > 0) {
      const int64_t end_traversal = (start + y.size(0) + num_steps_ - 1) / num_steps_;
      hold_sensitivity_rows(std::min(num_dims_, end_traversal - unit_first_traversal()));
    }
    if (generic_path_) {
      effect = update_aten(y, start);
    } else if (y.is_cpu()) {
      effect = y.scalar_type() == at::kDouble ? update_fused_cpu<double>(y, start) : update_fused_cpu<float>(y, start);
#if LATENTSWEEP_WITH_CUDA
    } else if (y.is_cuda()) {
      effect = update_fused_cuda(y, start);
#endif
    } else {
      effect = update_aten(y, start);
    }
  } catch (...) {
    invalidate();
    throw;
  }
  if (y.size(0) > 0) {
    previous_.copy_(y[y.size(0) - 1]);
    next_row_ = start + y.size(0);
  }
  return effect;
}

template <typename T>
at::Tensor SweepStatistics::update_fused_cpu(const at::Tensor& y, int64_t start) {
  const int64_t rows = y.size(0);
  const int64_t blocks = feature_blocks(features_);
  at::Tensor partial = at::empty({blocks, rows}, y.options().dtype(at::kDouble));
  void (*kernel)(const cpu::StatisticsChunk<T>&, int64_t, int64_t) = &cpu::statistics_blocks;
  void (*add_kept)(const cpu::StatisticsChunk<T>&, int64_t) = &cpu::add_kept_traversals;
#if LATENTSWEEP_HAVE_AVX2_KERNELS
  if (cpu::cpu_capability() == cpu::CpuCapability::kAvx2) {
    kernel = &cpu::statistics_blocks_avx2;
    add_kept = &cpu::add_kept_traversals_avx2;
  }
#endif
  // Threads take row ranges when the chunk holds enough traversals, else feature blocks. Either
  // way each (row, block) is summed alone and each traversal's slope in step order, and the
  // sensitivity gets its traversals in grid order, so the bits do not depend on the split.
  // A chunk smaller than torch's own grain for elementwise ops stays on this thread: waking the
  // pool cost more than the pass (and, on a loaded machine, up to ~0.3 ms per update).
  const int64_t threads = rows * features_ >= at::internal::GRAIN_SIZE ? at::get_num_threads() : 1;
  const std::vector<int64_t> bounds = cpu::row_ranges(start, rows, num_steps_, threads);
  const int64_t ranges = static_cast<int64_t>(bounds.size()) - 1;
  // Ranges after the first have their own running slopes and keep the slopes of the traversals
  // they complete until the first range's are in: every traversal that starts in them, except
  // one-step traversals, which have no slope and never reach complete_traversal.
  at::Tensor later_slopes, kept_slopes;
  int64_t kept = 0;
  if (ranges > 1) {
    later_slopes = at::zeros({ranges - 1, features_}, y.options());
    kept_slopes = at::empty({(rows - bounds[1]) / num_steps_, features_}, y.options());
    kept = num_steps_ > 1 ? kept_slopes.size(0) : 0;
  }
  const T* outputs = y.const_data_ptr<T>();
  const auto range_chunk = [&](int64_t i) {
    const int64_t first = bounds[i];
    const T* before = first > 0 ? outputs + (first - 1) * features_ : start > 0 ? previous_.const_data_ptr<T>() : nullptr;
    return cpu::StatisticsChunk<T>{
        outputs + first * features_, before, anchor_outputs_.const_data_ptr<T>(), inv_range_.const_data_ptr<double>(),
        sensitivity_sum_.data_ptr<double>(),
        i == 0 ? slope_.data_ptr<T>() : later_slopes.data_ptr<T>() + (i - 1) * features_,
        i == 0 ? nullptr : kept_slopes.data_ptr<T>() + (first - bounds[1]) / num_steps_ * features_,
        partial.data_ptr<double>() + first, rows, bounds[i + 1] - first, features_, start + first, num_dims_, num_steps_,
        unit_first_traversal()};
  };
  if (ranges > 1) {
    at::parallel_for(0, ranges, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) kernel(range_chunk(i), 0, blocks);
    });
    add_kept(range_chunk(1), kept);
    // The first range ended on a traversal's last step (its slope is back to zero); the last
    // one carries the chunk's unfinished traversal, if any, into the next chunk.
    slope_.copy_(later_slopes[ranges - 2]);
  } else {
    const cpu::StatisticsChunk<T> chunk = range_chunk(0);
    const int64_t tasks = std::min<int64_t>(threads, blocks);
    at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
      kernel(chunk, cpu::first_block_of_task(begin, tasks, features_), cpu::first_block_of_task(end, tasks, features_));
    });
  }
  // Combine the blocks in a fixed order, then accumulate per dim in grid order.
  const double* part = partial.const_data_ptr<double>();
  at::Tensor effect = at::empty({rows}, y.options());
  T* out = effect.data_ptr<T>();
  double* dim_sum = dim_effect_sum_.data_ptr<double>();
  GridIndex index = unravel_grid(start, num_dims_, num_steps_);
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t b = 0; b < blocks; ++b) sum += part[b * rows + r];
    const double mean = features_ > 0 ? sum / static_cast<double>(features_) : 0.0;
    out[r] = static_cast<T>(mean);
    dim_sum[index.dim] += mean;
    advance_grid(index, num_dims_, num_steps_);
  }
  return effect;
}

// Sums the rows of [n, ...] `per_traversal`, traversal i being grid traversal first + i, into
// [K, ...] by latent dim. Traversal t's dim is t % K, so after padding the rows to start at a
// multiple of K they fold into [-1, K, ...] and one reduction over the first axis adds them.
static at::Tensor sum_by_dim(const at::Tensor& per_traversal, int64_t first, int64_t num_dims) {
  const int64_t offset = first % num_dims, n = per_traversal.size(0);
  const int64_t padded = (offset + n + num_dims - 1) / num_dims * num_dims;
  std::vector<int64_t> shape(per_traversal.sizes().begin(), per_traversal.sizes().end());
  shape[0] = padded;
  at::Tensor folded = at::zeros(shape, per_traversal.options());
  folded.narrow(0, offset, n).copy_(per_traversal);
  shape[0] = num_dims;
  shape.insert(shape.begin(), padded / num_dims);
  return folded.view(shape).sum(0);
}

// Device-generic path (devices without a fused kernel; elsewhere when asked, see
// set_generic_path): whole-chunk tensor ops. index_add_ would add atomically on CUDA, in no
// fixed order (no bitwise identity), so fixed-order reductions add per traversal and per dim
// instead: the same bits for the same chunking, which the plan fixes.
// Chunk geometry comes from host arithmetic, so nothing here waits for the device.
at::Tensor SweepStatistics::update_aten(const at::Tensor& y, int64_t start) {
  const int64_t rows = y.size(0);
  if (rows == 0) return at::empty({0}, y.options());
  const auto device = y.device();
  // The chunk covers traversals [first, first + traversals); its row 0 is step `lead` of the first.
  const int64_t first = start / num_steps_, lead = start - first * num_steps_;
  const int64_t traversals = traversals_touched(start, rows, num_steps_);
  const int64_t complete = traversals_completed(start, rows, num_steps_);
  const bool last_complete = complete == traversals;
  const at::Tensor g = at::arange(start, start + rows, at::TensorOptions().dtype(at::kLong).device(device));
  const at::Tensor traversal = g.div(num_steps_, "floor");  // a * K + k of each row
  const at::Tensor anchor = traversal.div(num_dims_, "floor");

  // Effect: mean |y - x0| over the features, summed in double.
  const at::Tensor effect =
      (y - anchor_outputs_.index_select(0, anchor)).abs().sum(1, /*keepdim=*/false, at::kDouble)
          .div_(static_cast<double>(features_));
  // per traversal through a [traversals, S] frame of zeros (rows outside this chunk), then by dim
  at::Tensor effect_frame = at::zeros({traversals * num_steps_}, effect.options());
  effect_frame.narrow(0, lead, rows).copy_(effect);
  dim_effect_sum_.add_(sum_by_dim(effect_frame.view({traversals, num_steps_}).sum(1), first, num_dims_));

  // Sensitivity: |dy| per row (0 at a traversal's first step) summed per traversal after the
  // slope carried in from the previous chunk; the unfinished traversal at the chunk's end is
  // carried on in slope_, as in the fused kernel. The rows sit in a [traversals, S, F] frame.
  at::Tensor moved = at::zeros({traversals * num_steps_, features_}, y.options());
  at::Tensor mine = moved.narrow(0, lead, rows);
  if (rows > 1) {
    at::Tensor later = mine.narrow(0, 1, rows - 1);
    at::sub_out(later, y.narrow(0, 1, rows - 1), y.narrow(0, 0, rows - 1));
  }
  at::Tensor first_row = mine[0];
  at::sub_out(first_row, y[0], previous_);
  mine.abs_();
  const at::Tensor frame = moved.view({traversals, num_steps_, features_});
  frame.select(1, 0).zero_();  // a traversal's first step has no predecessor in it
  at::Tensor sums = frame.sum(1);  // [traversals, F]
  sums[0] += slope_;
  if (complete > 0) {
    const at::Tensor finished = at::arange(first, first + complete, g.options());
    const at::Tensor weighted = sums.narrow(0, 0, complete).to(at::kDouble) *
                                inv_range_.flatten().index_select(0, finished).unsqueeze(1);
    // (rows past the held ones are zero: the unit touched no more latents)
    sensitivity_sum_.add_(sum_by_dim(weighted, first - unit_first_traversal(), num_dims_).narrow(0, 0, sensitivity_rows()));
  }
  if (last_complete) {
    slope_.zero_();
  } else {
    slope_.copy_(sums[traversals - 1]);
  }
  return effect.to(dtype());
}

// Calls f(j, k, length) for the one or two runs of a unit's touched latents: its rows j ..
// j + length - 1 are latents k .. k + length - 1 (two runs when the range wraps past K - 1).
template <typename F>
static void for_each_latent_run(std::pair<int64_t, int64_t> latents, int64_t num_dims, F f) {
  const auto [first, count] = latents;
  const int64_t head = std::min(count, num_dims - first);
  if (head > 0) f(0, first, head);
  if (count > head) f(head, 0, count - head);
}

// Copies `count` rows by latent into `out`, out's row j being latent (first + j) % K, from
// `sums`, whose row r is latent (held_first + r) % K: one or two runs (the rows wrap past K - 1).
static void copy_by_latent(at::Tensor out, const at::Tensor& sums, int64_t held_first, int64_t first, int64_t count,
                           int64_t num_dims, bool non_blocking = false) {
  const int64_t offset = ((first - held_first) % num_dims + num_dims) % num_dims;  // out row 0's row in sums
  const int64_t head = std::min(count, num_dims - offset);
  if (head > 0) out.narrow(0, 0, head).copy_(sums.narrow(0, offset, head), non_blocking);
  if (count > head) out.narrow(0, head, count - head).copy_(sums.narrow(0, 0, count - head), non_blocking);
}

std::pair<int64_t, int64_t> SweepStatistics::touched_latents() const {
  if (!only_touched_rows_nonzero_) {  // (after load_state: any row held may hold sums)
    const int64_t held = sensitivity_rows();
    return {held == num_dims_ ? 0 : unit_first_traversal() % num_dims_, held};
  }
  const int64_t first_traversal = unit_first_traversal();
  const int64_t end_traversal = (next_row_ + num_steps_ - 1) / num_steps_;
  const int64_t count = std::min(num_dims_, end_traversal - first_traversal);
  return {count == num_dims_ ? 0 : first_traversal % num_dims_, count};
}

// Drops the sums' old buffer while a sweep runs. On CUDA the caching allocator would hand its
// memory to the next allocation on the stream it was made on (the executor's first chunk runs
// the statistics on the decoder's stream, the later ones on their own) while kernels queued on
// the current stream still use it: it is marked as used by the current stream, whose queue
// waited for the other's (executor.cpp), so it is reused only after them. (Other devices, one
// queue each, take the generic path; record_stream is CUDA's.)
static void release_after_queued_work(at::Tensor& sums) {
  if (sums.defined() && sums.is_cuda() && sums.numel() > 0) {
    const c10::impl::VirtualGuardImpl guard(sums.device().type());
    sums.record_stream(guard.getStream(sums.device()));
  }
  sums = at::Tensor();
}

void SweepStatistics::hold_sensitivity_rows(int64_t rows) {
  const int64_t held = sensitivity_rows();
  if (rows <= held) return;
  // Doubling (up to K) bounds the copies while a unit whose end was not given grows chunk by chunk.
  at::Tensor grown = at::zeros({std::min(num_dims_, std::max(rows, 2 * held)), features_}, sensitivity_sum_.options());
  grown.narrow(0, 0, held).copy_(sensitivity_sum_);
  release_after_queued_work(sensitivity_sum_);
  sensitivity_sum_ = grown;
}

void SweepStatistics::reset(int64_t start_row, int64_t stop_row) {
  TORCH_CHECK(start_row >= 0 && start_row <= total_rows() && start_row % num_steps_ == 0,
              "SweepStatistics: a unit starts at a traversal's first row, got row ", start_row);
  TORCH_CHECK(stop_row == -1 || (stop_row >= start_row && stop_row <= total_rows()),
              "SweepStatistics: a unit [", start_row, ", ", stop_row, ") outside the grid's ", total_rows(), " rows");
  const int64_t unit_latents =
      stop_row < 0 ? 0 : std::min(num_dims_, (stop_row - start_row + num_steps_ - 1) / num_steps_);
  if (unit_latents > sensitivity_rows()) {  // (the old sums freed before the new ones are made)
    const at::TensorOptions options = sensitivity_sum_.options();
    release_after_queued_work(sensitivity_sum_);
    sensitivity_sum_ = at::zeros({unit_latents, features_}, options);
  }
  if (valid_ && only_touched_rows_nonzero_) {
    const std::pair<int64_t, int64_t> touched = touched_latents();
    for_each_latent_run(touched, num_dims_, [&](int64_t, int64_t k, int64_t length) {
      dim_effect_sum_.narrow(0, k, length).zero_();
    });
    sensitivity_sum_.narrow(0, 0, touched.second).zero_();  // (rows 0 .. count - 1: see sensitivity_sum_)
  } else {
    sensitivity_sum_.zero_();
    dim_effect_sum_.zero_();
  }
  only_touched_rows_nonzero_ = true;
  unit_start_ = next_row_ = start_row;
  valid_ = true;
  previous_.zero_();
  slope_.zero_();
}

at::Tensor SweepStatistics::dim_effect() const {
  check_valid("dim_effect()");
  // Divided on the CPU: CUDA divides by a scalar as a product with its reciprocal (other bits).
  return dim_effect_sum_.cpu() / static_cast<double>(num_anchors_ * num_steps_);
}

at::Tensor SweepStatistics::sensitivity() const {
  check_valid("sensitivity()");
  // Held row r is latent (unit_first_traversal() + r) % K, distinct for r < n <= K; the others 0.
  const at::Tensor latents =
      (at::arange(sensitivity_rows(), at::kLong) + unit_first_traversal()).remainder_(num_dims_);
  at::Tensor by_latent = at::zeros({num_dims_, features_}, at::kDouble);
  by_latent.index_copy_(0, latents, sensitivity_sum_.cpu());
  return by_latent / static_cast<double>(num_anchors_);
}

std::map<std::string, at::Tensor> SweepStatistics::unit_sums_to_host() const {
  check_valid("unit_sums_to_host()");
  const auto [first, count] = touched_latents();
  const auto to_host = [&](const at::Tensor& sum, int64_t held_first) {
    std::vector<int64_t> shape(sum.sizes().begin(), sum.sizes().end());
    shape[0] = count;
    const at::TensorOptions host_options = sum.options().device(at::kCPU).pinned_memory(!sum.is_cpu());
    at::Tensor host = at::empty(shape, host_options);
    copy_by_latent(host, sum, held_first, first, count, num_dims_, /*non_blocking=*/!sum.is_cpu());
    return host;
  };
  return {{"dim_effect_sum", to_host(dim_effect_sum_, 0)},
          {"sensitivity_sum", to_host(sensitivity_sum_, unit_first_traversal() % num_dims_)}};
}

std::map<std::string, at::Tensor> SweepStatistics::state() const {
  check_valid("state()");
  return {{"next_row", at::tensor(next_row_, at::kLong)},
          {"unit_start", at::tensor(unit_start_, at::kLong)},
          {"sensitivity_sum", sensitivity_sum_.cpu().clone()},
          {"dim_effect_sum", dim_effect_sum_.cpu().clone()},
          {"previous", previous_.cpu().clone()},
          {"slope", slope_.cpu().clone()}};
}

void SweepStatistics::load_state(const std::map<std::string, at::Tensor>& state) {
  for (const char* key : {"next_row", "unit_start", "sensitivity_sum", "dim_effect_sum", "previous", "slope"}) {
    TORCH_CHECK(state.count(key), "SweepStatistics: checkpoint has no '", key, "'");
  }
  const at::Tensor& sums = state.at("sensitivity_sum");
  TORCH_CHECK(sums.dim() == 2 && sums.size(0) <= num_dims_ && sums.size(1) == features_ &&
                  state.at("dim_effect_sum").sizes() == dim_effect_sum_.sizes() &&
                  state.at("previous").sizes() == previous_.sizes() &&
                  state.at("slope").sizes() == slope_.sizes(),
              "SweepStatistics: checkpoint shapes do not match this sweep");
  const int64_t row = state.at("next_row").item<int64_t>(), unit_start = state.at("unit_start").item<int64_t>();
  TORCH_CHECK(row >= 0 && row <= total_rows(), "SweepStatistics: checkpoint row out of range");
  TORCH_CHECK(unit_start >= 0 && unit_start <= row && unit_start % num_steps_ == 0,
              "SweepStatistics: checkpoint's unit start ", unit_start, " is not a traversal's first row at or before ",
              row);
  next_row_ = row;
  unit_start_ = unit_start;
  valid_ = true;
  only_touched_rows_nonzero_ = false;  // (sums from elsewhere: the next reset zeroes them all)
  at::Tensor loaded = sums.to(sensitivity_sum_.options()).clone();
  release_after_queued_work(sensitivity_sum_);
  sensitivity_sum_ = loaded;
  dim_effect_sum_.copy_(state.at("dim_effect_sum"));
  previous_.copy_(state.at("previous"));
  slope_.copy_(state.at("slope"));
}

}  // namespace latentsweep
