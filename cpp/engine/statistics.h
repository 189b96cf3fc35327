// Exact streaming statistics of a sweep, fed chunk by chunk in grid order.
//
// Grid rows g = (anchor a, dim k, step s) in row-major order; y[g] are the decoder outputs
// flattened to F features and x0[a] the outputs at the anchors themselves.
//   effect[g]        = mean_f |y[g, f] - x0[a, f]|                  (returned per chunk)
//   dim_effect[k]    = mean over a and s of effect
//   sensitivity[k,f] = mean over a of sum_s |y[a,k,s+1,f] - y[a,k,s,f]| / |v[a,k,S-1] - v[a,k,0]|
// A traversal may straddle chunks: the last row of each chunk is carried to the next. A sweep
// keeps the statistics of whole work units only (a unit is recorded when all its chunks are
// in), so a failed chunk needs no undo: it marks the statistics invalid until reset().
//
// Precision: statistics are computed in the outputs' precision. float64 outputs get float64
// differences and sums everywhere. float32 (and narrower, widened exactly to float32) outputs
// get float32 differences |y - x0| and |y[s] - y[s-1]|, each correctly rounded (the inputs are
// exact float32 numbers, so the only error is one rounding of the difference), per-traversal
// sums of |dy| in float32 (relative error at most about S * 2^-24) and float64 totals.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <utility>

namespace latentsweep {

class SweepStatistics {
 public:
  // anchor_outputs: [A, F] on the sweep's device (its dtype sets the statistics' precision:
  // float64 for float64, else float32); values: [A, K, S].
  SweepStatistics(const at::Tensor& anchor_outputs, const at::Tensor& values);

  // outputs: [rows, F] for grid rows [start, start + rows); start must be next_row().
  // Returns the chunk's effect [rows] (in dtype(), outputs' device).
  at::Tensor update(const at::Tensor& outputs, int64_t start);
  // After a chunk failed (in update, the decoder or the sink): refuse updates and state()
  // until reset() or load_state(), so half-counted statistics are never used.
  void invalidate() { valid_ = false; }

  // Starts a work unit at start_row (the first step of a traversal): the sums restart from zero,
  // so a unit's statistics depend on its own rows only. stop_row (-1: unknown), the unit's end,
  // sizes the sensitivity's sums for its latents at once (else they grow as chunks arrive).
  void reset(int64_t start_row, int64_t stop_row = -1);

  // CPU and CUDA outputs go to fused kernels (float32 or float64) that do the same operations
  // in the same order, so a chunk's statistics have the same bits on either device; other
  // devices take the device-generic path (torch ops, fixed-order reductions). On: every device
  // takes the generic path (the tests' independent reference; a benchmark's "before").
  void set_generic_path(bool on) { generic_path_ = on; }

  at::ScalarType dtype() const { return anchor_outputs_.scalar_type(); }
  int64_t next_row() const { return next_row_; }
  int64_t total_rows() const { return num_anchors_ * num_dims_ * num_steps_; }

  at::Tensor dim_effect() const;   // [K] float64, over the rows seen so far, on the CPU
  at::Tensor sensitivity() const;  // [K, F] float64 (sum / A), on the CPU
  // Rows of the sensitivity's float64 sums held now: the most latents a unit has touched (<= K).
  int64_t sensitivity_rows() const { return sensitivity_sum_.size(0); }

  // The latents the traversals of the unit's rows so far touch, [the row reset() started it at,
  // next_row()): (first, count), row j of a unit's sums being latent (first + j) % K, first 0
  // when every latent is touched. The rule of python/latentsweep/merge.py's unit_latents, which
  // checks these sums' shapes against it.
  std::pair<int64_t, int64_t> touched_latents() const;

  // A finished unit's sums of the latents it touched {dim_effect_sum [n], sensitivity_sum [n, F]}
  // (float64, rows as touched_latents() says) as CPU tensors: the other rows are +0.0 and are
  // neither copied nor kept (they grew a unit's record with K). Device statistics are copied into
  // pinned memory on the current stream without waiting: the tensors hold the sums once that
  // stream has reached this point (an event recorded after this call, synchronized, says so), so
  // a unit's end need not drain the GPU.
  std::map<std::string, at::Tensor> unit_sums_to_host() const;

  // The state, for checkpoints and scratch runs, and its restoration (as CPU tensors): the
  // sums' rows as held (row r of the sensitivity: latent (unit_start / S + r) % K).
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& state);

 private:
  void check_valid(const char* what) const;
  template <typename T>
  at::Tensor update_fused_cpu(const at::Tensor& outputs, int64_t start);
  at::Tensor update_fused_cuda(const at::Tensor& outputs, int64_t start);  // cuda/statistics_update.cpp
  at::Tensor update_aten(const at::Tensor& outputs, int64_t start);
  // Grows the sensitivity's sums to at least `rows` rows (<= K), the new rows zero.
  void hold_sensitivity_rows(int64_t rows);
  // The first traversal of the current unit: row 0 of the sensitivity's sums is its latent.
  int64_t unit_first_traversal() const { return unit_start_ / num_steps_; }

  int64_t num_anchors_, num_dims_, num_steps_, features_;
  at::Tensor anchor_outputs_;  // [A, F] float32 or float64 (the statistics' precision)
  at::Tensor inv_range_;       // [A, K] float64
  // [n, F] float64, n <= K the most latents a unit has touched: row r is the latent of the unit's
  // traversal r, (unit_first_traversal() + r) % K (a unit of few traversals needs few rows: at
  // 1,024 latents of 3 x 128 x 128 outputs, [K, F] took 402 MB; BENCHMARKS.md, explain).
  at::Tensor sensitivity_sum_;
  at::Tensor dim_effect_sum_;  // [K] float64
  at::Tensor previous_;        // [F] dtype(): outputs of row next_row_ - 1
  at::Tensor slope_;           // [F] dtype(): sum of |dy| over the unfinished traversal
  int64_t next_row_ = 0;
  int64_t unit_start_ = 0;  // the row reset() last started a unit at
  // Every row of the sums outside touched_latents() is +0.0, so reset() zeroes only those rows
  // (zeroing [K, F] at every unit's start cost as much as the decoder at K = 4096). False after
  // load_state (any rows held) and after a failed chunk (it may have added to rows past next_row_).
  bool only_touched_rows_nonzero_ = true;
  bool valid_ = true;
  bool generic_path_ = false;
};

}  // namespace latentsweep
