// The sweep executor: walks the traversal grid in fixed-size chunks, writes each chunk's codes
// into a reused buffer on the decoder's device, calls the (Python) decoder under inference
// mode, feeds the outputs to the statistics and hands them to a sink.
//
// On CUDA the work is pipelined: codes for the next chunk are written on a side stream while
// the decoder runs, a chunk's statistics run on a third stream beside the next chunk's decoding,
// outputs and a unit's sums are copied to pinned host buffers without blocking, and a chunk is
// delivered to the sink while the GPU decodes the next one; the units of one run are one
// pipeline (nothing drains at a unit's end).
#pragma once

#include <ATen/ATen.h>
#include <pybind11/pybind11.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "statistics.h"

namespace latentsweep {

class SweepExecutor {
 public:
  // anchors [A, D], dims [K] int64 and values [A, K, S] on the decoder's device (values in the
  // anchors' dtype, may be an expanded view); out_shape: the decoder's output shape per code.
  // code_writer: None for the axis-aligned grid (anchors with dims[k] set to values; written
  // with _traversal_codes_into_trusted: dims were validated once, so no scan or sync per
  // chunk), or a callable (start, count, out) that writes the codes of grid rows
  // [start, start + count) into out [count, D] in the same row order (e.g. traversals along
  // directions, with _direction_codes_into_trusted). fn: the public function the user called
  // ("latentsweep.interpolate"), which every message about the decoder starts with.
  // pad_short_chunks: a chunk shorter than batch_size (a unit's last) reaches the decoder padded
  // to batch_size with copies of its last code (one shape for every call: CUDA graphs), else as
  // it is (no decoder work on padding: on the CPU up to S - 1 rows per unit).
  // out_dtype: the torch.dtype the decoder returned at the anchors (None: not checked); outputs
  // of another dtype are refused, as outputs of another shape are. nonfinite_subject: who made
  // a NaN or Inf output, as the error says it (decoding.DecoderCall.nonfinite_subject).
  SweepExecutor(std::string fn, pybind11::object decoder, at::Tensor anchors, at::Tensor dims, at::Tensor values,
                int64_t batch_size, std::vector<int64_t> out_shape,
                pybind11::object code_writer = pybind11::none(), bool pad_short_chunks = true,
                pybind11::object out_dtype = pybind11::none(),
                std::string nonfinite_subject = "the decoder returned");

  // Rows [start, stop) of one work unit (whole traversals).
  using UnitRows = std::pair<int64_t, int64_t>;

  // Decodes the units in order, in chunks of batch_size (see pad_short_chunks), a unit's
  // statistics starting with stats.reset(start). For each chunk, in grid order: sink(start,
  // count, outputs, effect) with outputs a CPU tensor [count, *out_shape] (None unless
  // copy_outputs) and effect a CPU tensor [count]; then progress(count); after a unit's last
  // chunk, unit_done(i, sums): i its index in `units`, sums stats.unit_sums_to_host(). On CUDA
  // the units are one pipeline: a unit's end waits for nothing on the GPU. If anything fails,
  // the statistics are invalidated, the units already reported stay done (the caller resets
  // the statistics for the next attempt) and the error propagates.
  void run_units(SweepStatistics& stats, const std::vector<UnitRows>& units, pybind11::object sink,
                 bool copy_outputs, pybind11::object progress, pybind11::object unit_done);

  // Decodes grid rows [first_row, end_row) on from the statistics' state (first_row must be
  // stats.next_row(): no reset, nothing reported but chunks, as in run_units).
  void run(SweepStatistics& stats, int64_t first_row, int64_t end_row, pybind11::object sink,
           bool copy_outputs, pybind11::object progress);

  int64_t batch_size() const { return batch_size_; }

 private:
  struct Chunk {
    int64_t start = 0, count = 0;
    int64_t unit_stop = 0;      // the unit's end row (its statistics' sums are sized for it)
    size_t unit = 0;            // index into the run's units
    bool first_of_unit = false, last_of_unit = false;
    at::Tensor outputs;  // [count, F] on the device
    at::Tensor effect;   // [count] on the device
  };
  // The chunks of a run's units in order: each unit cut into batch_size rows from its start.
  class Chunks {
   public:
    Chunks(const std::vector<UnitRows>& units, int64_t batch_size) : units_(units), batch_size_(batch_size) {}
    bool empty() const;
    Chunk first() const;
    std::optional<Chunk> after(const Chunk& chunk) const;

   private:
    Chunk at(size_t unit, int64_t start) const;
    const std::vector<UnitRows>& units_;
    int64_t batch_size_;
  };
  // What to do at units' edges: reset the statistics at a unit's start and report its end.
  struct UnitEdges {
    bool reset = false;
    pybind11::object unit_done;  // None: nothing reported
  };

  // Writes the codes of rows [start, start + count) into `buffer` and returns the decoder's input:
  // the buffer padded with copies of the last row, or its first count rows.
  at::Tensor write_codes(at::Tensor& buffer, int64_t start, int64_t count) const;
  // Calls the decoder on codes [n, D] and checks what it returned; returns [n, F] (a view).
  at::Tensor decode(const at::Tensor& codes) const;
  // Raises if the chunk's effect has NaN or Inf: naming the grid points, and saying whether the
  // decoder returned them or finite outputs overflowed |y - x0| (outputs: the chunk's decoder
  // outputs if still as decoded, else undefined).
  void check_finite(const at::Tensor& effect_cpu, int64_t start, const at::Tensor& outputs) const;
  // The chunk's outputs and effect to the sink and its rows to progress; after a unit's last
  // chunk, its sums (CPU tensors, already copied) to edges.unit_done.
  void deliver(const Chunk& chunk, const at::Tensor& outputs_cpu, const at::Tensor& effect_cpu,
               const std::map<std::string, at::Tensor>& unit_sums, pybind11::object& sink,
               pybind11::object& progress, const UnitEdges& edges) const;
  void run_chunks(SweepStatistics& stats, const std::vector<UnitRows>& units, const UnitEdges& edges,
                  pybind11::object& sink, bool copy_outputs, pybind11::object& progress);

  void run_cpu(SweepStatistics& stats, const Chunks& chunks, const UnitEdges& edges, pybind11::object& sink,
               bool copy_outputs, pybind11::object& progress);
  void run_pipelined(SweepStatistics& stats, const Chunks& chunks, const UnitEdges& edges,
                     pybind11::object& sink, bool copy_outputs, pybind11::object& progress);

  std::string fn_;
  // Who made a non-finite output, as check_finite says it: "the decoder returned", or
  // "exp(decoder output) is" when an output_transform made it.
  std::string nonfinite_subject_;
  pybind11::object decoder_;
  pybind11::object code_writer_;
  at::Tensor anchors_, dims_, values_;
  int64_t batch_size_;
  bool pad_short_chunks_;
  std::vector<int64_t> out_shape_;
  pybind11::object out_dtype_;  // a torch.dtype, or None
  int64_t features_;
};

}  // namespace latentsweep
