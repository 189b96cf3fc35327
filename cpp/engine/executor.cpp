#include "executor.h"

#include "../ops/traversal_codes.h"
#include "cpu/reusing_allocator.h"

#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/extension.h>

#include <cmath>
#include <optional>
#include <sstream>
#include <vector>

namespace py = pybind11;

namespace latentsweep {
namespace {

std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream text;
  text << shape;
  return text.str();
}

}  // namespace

SweepExecutor::SweepExecutor(std::string fn, py::object decoder, at::Tensor anchors, at::Tensor dims,
                             at::Tensor values, int64_t batch_size, std::vector<int64_t> out_shape,
                             py::object code_writer, bool pad_short_chunks, py::object out_dtype,
                             std::string nonfinite_subject)
    : fn_(std::move(fn)),
      nonfinite_subject_(std::move(nonfinite_subject)),
      decoder_(std::move(decoder)),
      code_writer_(std::move(code_writer)),
      anchors_(anchors.contiguous()),
      dims_(dims.contiguous()),
      values_(std::move(values)),
      batch_size_(batch_size),
      pad_short_chunks_(pad_short_chunks),
      out_shape_(std::move(out_shape)),
      out_dtype_(std::move(out_dtype)) {
  TORCH_CHECK(batch_size_ >= 1, "SweepExecutor: batch_size must be >= 1");
  TORCH_CHECK(anchors_.dim() == 2 && values_.dim() == 3, "SweepExecutor: bad anchors/values");
  features_ = 1;
  for (int64_t size : out_shape_) features_ *= size;
}

at::Tensor SweepExecutor::write_codes(at::Tensor& buffer, int64_t start, int64_t count) const {
  at::Tensor rows = buffer.narrow(0, 0, count);
  if (code_writer_.is_none()) {
    // The grid was validated once (grid_spec.py): no scan of dims, and no sync, per chunk.
    trusted_traversal_codes_into(anchors_, dims_, values_, start, count, rows);
  } else {
    py::gil_scoped_acquire gil;
    code_writer_(start, count, rows);
  }
  if (count == batch_size_ || !pad_short_chunks_) return rows;
  buffer.narrow(0, count, batch_size_ - count).copy_(buffer[count - 1].expand({batch_size_ - count, buffer.size(1)}));
  return buffer;
}

at::Tensor SweepExecutor::decode(const at::Tensor& codes) const {
  py::object result = decoder_(codes);
  if (!THPVariable_Check(result.ptr())) {
    throw py::type_error(fn_ + ": the decoder must return a torch.Tensor, got " +
                         std::string(py::str(py::type::of(result).attr("__name__"))));
  }
  const at::Tensor y = THPVariable_Unpack(result.ptr());
  const int64_t rows = codes.size(0);
  if (y.dim() < 1 || y.size(0) != rows) {
    throw py::value_error(fn_ + ": the decoder returned shape " + shape_string(y.sizes()) +
                          " for a batch of " + std::to_string(rows) +
                          " codes; it must return one output per code ([batch, ...])");
  }
  if (!at::isFloatingType(y.scalar_type())) {
    throw py::type_error(fn_ + ": the decoder must return floating-point outputs, got " +
                         std::string(c10::toString(y.scalar_type())));
  }
  // (the same message as the probe's, decoder_probe.py)
  const py::object dtype = result.attr("dtype");
  if (y.sizes().slice(1) != at::IntArrayRef(out_shape_) || (!out_dtype_.is_none() && !dtype.is(out_dtype_))) {
    const std::string expected = out_dtype_.is_none() ? "" : " " + std::string(py::str(out_dtype_));
    throw py::value_error(fn_ + ": the decoder's output shape changed from " + shape_string(out_shape_) +
                          expected + " to " + shape_string(y.sizes().slice(1)) + " " +
                          std::string(py::str(dtype)) +
                          " per code between two calls; it must return the same shape and dtype for every batch");
  }
  if (y.device() != anchors_.device()) {
    throw py::value_error(fn_ + ": the decoder returned outputs on " + y.device().str() +
                          " for codes on " + anchors_.device().str());
  }
  return y.reshape({rows, features_});
}

// A plain scan of the chunk's effect on the host (one value per row: no tensor ops per chunk);
// a NaN or Inf anywhere in a row's outputs makes its mean effect NaN or Inf.
template <typename T>
static std::vector<int64_t> non_finite_rows(const at::Tensor& effect_cpu) {
  const T* effect = effect_cpu.const_data_ptr<T>();
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < effect_cpu.numel(); ++r) {
    if (!std::isfinite(effect[r])) rows.push_back(r);
  }
  return rows;
}

void SweepExecutor::check_finite(const at::Tensor& effect_cpu, int64_t start, const at::Tensor& outputs) const {
  const at::Tensor effect = effect_cpu.contiguous();
  const std::vector<int64_t> rows = effect.scalar_type() == at::kDouble ? non_finite_rows<double>(effect)
                                                                       : non_finite_rows<float>(effect.to(at::kFloat));
  if (rows.empty()) return;
  const char* precision = effect.scalar_type() == at::kDouble ? "float64" : "float32";
  // Finite outputs whose distance to the anchor's does not fit the statistics' precision (e.g.
  // +-3e38 in float32) make an infinite effect too: that is not the decoder's NaN or Inf.
  bool outputs_finite = false;
  if (outputs.defined()) {
    const at::Tensor picked = outputs.index_select(0, at::tensor(rows).to(outputs.device()));
    outputs_finite = at::isfinite(picked).all().item<bool>();
  }
  const int64_t num_dims = values_.size(1), num_steps = values_.size(2);
  std::ostringstream text;
  text << fn_ << (outputs_finite ? ": the statistics overflowed " + std::string(precision) + " at "
                                 : ": " + nonfinite_subject_ + " NaN or Inf for ")
       << rows.size() << " grid point(s) of rows " << start << ".." << start + effect_cpu.size(0) - 1 << ", e.g.";
  const auto dims_cpu = dims_.cpu();
  for (size_t i = 0; i < std::min<size_t>(rows.size(), 3); ++i) {
    const int64_t g = start + rows[i];
    const int64_t step = g % num_steps, rest = g / num_steps;
    text << " (anchor " << rest / num_dims << ", latent dim " << dims_cpu[rest % num_dims].item<int64_t>()
         << ", step " << step << ")";
  }
  if (outputs_finite) {
    text << ": the decoder's outputs there are finite, but differ from the anchor's by more than " << precision
         << " holds; return float64 outputs, or scale them (output_transform=)";
  } else if (!outputs.defined()) {
    text << " (or outputs so far from the anchor's that their difference overflows " << precision << ")";
  }
  throw py::value_error(text.str());
}

bool SweepExecutor::Chunks::empty() const { return units_.empty(); }

SweepExecutor::Chunk SweepExecutor::Chunks::at(size_t unit, int64_t start) const {
  const auto [unit_start, unit_stop] = units_[unit];
  Chunk chunk;
  chunk.start = start;
  chunk.count = std::min(batch_size_, unit_stop - start);
  chunk.unit = unit;
  chunk.unit_stop = unit_stop;
  chunk.first_of_unit = start == unit_start;
  chunk.last_of_unit = start + chunk.count == unit_stop;
  return chunk;
}

SweepExecutor::Chunk SweepExecutor::Chunks::first() const { return at(0, units_[0].first); }

std::optional<SweepExecutor::Chunk> SweepExecutor::Chunks::after(const Chunk& chunk) const {
  if (!chunk.last_of_unit) return at(chunk.unit, chunk.start + chunk.count);
  if (chunk.unit + 1 < units_.size()) return at(chunk.unit + 1, units_[chunk.unit + 1].first);
  return std::nullopt;
}

void SweepExecutor::deliver(const Chunk& chunk, const at::Tensor& outputs_cpu, const at::Tensor& effect_cpu,
                            const std::map<std::string, at::Tensor>& unit_sums, py::object& sink,
                            py::object& progress, const UnitEdges& edges) const {
  check_finite(effect_cpu, chunk.start, outputs_cpu.defined() ? outputs_cpu : chunk.outputs);
  if (!sink.is_none()) {
    py::object outputs = py::none();
    if (outputs_cpu.defined()) {
      std::vector<int64_t> shape{chunk.count};
      shape.insert(shape.end(), out_shape_.begin(), out_shape_.end());
      outputs = py::cast(outputs_cpu.view(shape));
    }
    sink(chunk.start, chunk.count, outputs, effect_cpu);
  }
  if (!progress.is_none()) progress(chunk.count);
  if (chunk.last_of_unit && !edges.unit_done.is_none()) edges.unit_done(chunk.unit, unit_sums);
}

void SweepExecutor::run_units(SweepStatistics& stats, const std::vector<UnitRows>& units, py::object sink,
                              bool copy_outputs, py::object progress, py::object unit_done) {
  for (const auto& [start, stop] : units) {
    TORCH_CHECK(start >= 0 && start < stop && stop <= stats.total_rows(), "SweepExecutor: bad unit rows [", start,
                ", ", stop, ") for a grid of ", stats.total_rows(), " rows");
  }
  run_chunks(stats, units, UnitEdges{true, std::move(unit_done)}, sink, copy_outputs, progress);
}

void SweepExecutor::run(SweepStatistics& stats, int64_t first_row, int64_t end_row, py::object sink,
                        bool copy_outputs, py::object progress) {
  TORCH_CHECK(first_row == stats.next_row(), "SweepExecutor: statistics are at row ", stats.next_row(),
              ", the run starts at ", first_row);
  TORCH_CHECK(end_row >= first_row && end_row <= stats.total_rows(), "SweepExecutor: bad row range");
  std::vector<UnitRows> rows;
  if (end_row > first_row) rows.emplace_back(first_row, end_row);
  run_chunks(stats, rows, UnitEdges{false, py::none()}, sink, copy_outputs, progress);
}

void SweepExecutor::run_chunks(SweepStatistics& stats, const std::vector<UnitRows>& units, const UnitEdges& edges,
                               py::object& sink, bool copy_outputs, py::object& progress) {
  const Chunks chunks(units, batch_size_);
  if (chunks.empty()) return;
  // Not InferenceMode: what the decoder creates here (caches, lazy layers) must stay usable by
  // its training (the rule of python/latentsweep/_modules.py's without_grad).
  at::NoGradGuard no_grad;
  try {
    if (anchors_.is_cuda()) {
      run_pipelined(stats, chunks, edges, sink, copy_outputs, progress);
    } else {
      run_cpu(stats, chunks, edges, sink, copy_outputs, progress);
    }
  } catch (...) {
    stats.invalidate();  // the unit is incomplete: its statistics must not be used
    throw;
  }
}

void SweepExecutor::run_cpu(SweepStatistics& stats, const Chunks& chunks, const UnitEdges& edges,
                            py::object& sink, bool copy_outputs, py::object& progress) {
  const cpu::ReuseCpuBuffers reuse;  // no page faults for the decoder's activations (see there)
  at::Tensor codes = at::empty({batch_size_, anchors_.size(1)}, anchors_.options());
  // The previous chunk's outputs stay alive while the next chunk is decoded, so the decoder
  // writes its outputs into the other of two buffers: written into the buffer the statistics
  // threads had just read (cache lines shared with the other core), the MLP's last layer ran
  // 1.7x slower than in a plain loop (traverse +13% over the floor; +4-7% with this). Costs one
  // more chunk of outputs in memory.
  at::Tensor previous_outputs;
  for (std::optional<Chunk> next = chunks.first(); next; next = chunks.after(*next)) {
    Chunk& chunk = *next;
    if (chunk.first_of_unit && edges.reset) stats.reset(chunk.start, chunk.unit_stop);
    at::Tensor input;
    {
      py::gil_scoped_release no_gil;
      input = write_codes(codes, chunk.start, chunk.count);
    }
    {
      // A short chunk (a unit's last) decodes in the blocks of the full ones before it.
      const cpu::ShortChunkRequests short_chunk(input.size(0), batch_size_);
      chunk.outputs = decode(input).narrow(0, 0, chunk.count);
    }
    {
      py::gil_scoped_release no_gil;
      chunk.effect = stats.update(chunk.outputs, chunk.start);
    }
    std::map<std::string, at::Tensor> unit_sums;
    if (chunk.last_of_unit && !edges.unit_done.is_none()) unit_sums = stats.unit_sums_to_host();
    deliver(chunk, copy_outputs ? chunk.outputs : at::Tensor(), chunk.effect, unit_sums, sink, progress, edges);
    previous_outputs = chunk.outputs;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C between chunks
  }
}

// CUDA: three streams. Chunk i is decoded on the caller's stream while the previous chunk's
// statistics run on a high-priority statistics stream (a memory-bound pass beside the decoder's
// compute-bound one, see below) and the codes of chunk i + 1 are written on a codes stream; chunk i - 1
// (copied to pinned memory on the statistics stream) is delivered to the sink on the host
// meanwhile. A unit's sums are copied back the same way, so the GPU never waits for the host at
// a unit's end: the units of one run are one pipeline.
void SweepExecutor::run_pipelined(SweepStatistics& stats, const Chunks& chunks, const UnitEdges& edges,
                                  py::object& sink, bool copy_outputs, py::object& progress) {
  const c10::Device device = anchors_.device();
  const c10::impl::VirtualGuardImpl guard_impl(device.type());
  const c10::Stream compute = guard_impl.getStream(device);
  const c10::Stream side = guard_impl.getStreamFromGlobalPool(device, /*isHighPriority=*/false);
  // High priority: the block scheduler starts the statistics' blocks as the decoder's free their
  // slots, instead of after all of a long kernel's blocks (an MLP's GEMM is ~25 waves). Measured
  // on an H100 (MLP, batch 65536): traverse 26.7 -> 25.1 ms, decoder alone 18.6 ms.
  const c10::Stream statistics = guard_impl.getStreamFromGlobalPool(device, /*isHighPriority=*/true);
  const auto pinned = [&](std::vector<int64_t> shape, at::ScalarType dtype) {
    return at::empty(shape, at::TensorOptions().dtype(dtype).pinned_memory(true));
  };
  at::Tensor codes[2], inputs[2], host_outputs[2], host_effect[2];
  for (int b = 0; b < 2; ++b) {
    codes[b] = at::empty({batch_size_, anchors_.size(1)}, anchors_.options());
    host_effect[b] = pinned({batch_size_}, stats.dtype());
  }
  c10::Event codes_ready[2] = {c10::Event(device.type()), c10::Event(device.type())};
  c10::Event decoded[2] = {c10::Event(device.type()), c10::Event(device.type())};
  c10::Event copied[2] = {c10::Event(device.type()), c10::Event(device.type())};
  // The side streams start after the caller's work so far (the anchors, the statistics' tensors,
  // the buffers above), and the caller's stream goes on only after theirs, failed or not.
  c10::Event begun(device.type());
  begun.record(compute);
  begun.block(side);
  begun.block(statistics);
  struct JoinAtExit {
    const c10::Stream& from;
    const c10::Stream& to;
    ~JoinAtExit() {
      try {
        c10::Event done(from.device_type());
        done.record(from);
        done.block(to);
      } catch (...) {  // a destructor must not throw; a broken device fails the next call anyway
      }
    }
  };
  const JoinAtExit join_side{side, compute}, join_statistics{statistics, compute};

  const auto enqueue_codes = [&](int b, const Chunk& chunk) {
    const c10::StreamGuard on_side(side);
    inputs[b] = write_codes(codes[b], chunk.start, chunk.count);
    codes_ready[b].record(side);
  };
  // Statistics run beside the decoder only once the decoder is seen to return a new tensor for
  // each chunk: one that returns the same buffer every time (a CUDA graph's static outputs)
  // would overwrite a chunk's outputs while its statistics still read them. Until then (and for
  // such a decoder, always) they run on `compute`, between one chunk's decoding and the next.
  bool beside_decoder = false, decided = false;
  struct Pending {
    Chunk chunk;
    int buffer;
    std::map<std::string, at::Tensor> unit_sums;
  };
  std::optional<Pending> pending;  // copied (or being copied), not yet delivered
  const auto deliver_pending = [&]() {
    const Pending& done = *pending;
    {
      // Other Python threads run while this one waits for the GPU (e.g. HostCopies' thread,
      // whose copies would otherwise wait for Python's 5 ms switch interval to get the GIL).
      py::gil_scoped_release no_gil;
      copied[done.buffer].synchronize();
    }
    Chunk delivered = done.chunk;
    if (!beside_decoder) delivered.outputs = at::Tensor();  // one buffer: the next chunk's by now
    deliver(delivered,
            copy_outputs ? host_outputs[done.buffer].narrow(0, 0, done.chunk.count) : at::Tensor(),
            host_effect[done.buffer].narrow(0, 0, done.chunk.count), done.unit_sums, sink, progress, edges);
    pending.reset();
  };

  at::Tensor first_chunk_outputs;  // kept until the second chunk's exist, so its memory is not reused

  enqueue_codes(0, chunks.first());
  int b = 0;
  for (std::optional<Chunk> next = chunks.first(); next; b ^= 1) {
    Chunk chunk = *next;
    next = chunks.after(chunk);
    codes_ready[b].block(compute);
    // Until the decoder is known to return new tensors, its previous outputs may be the buffer
    // it is about to write: their copy to the host must be done first.
    if (!beside_decoder && copy_outputs && pending) copied[pending->buffer].block(compute);
    chunk.outputs = decode(inputs[b]).narrow(0, 0, chunk.count);  // enqueued on `compute`
    decoded[b].record(compute);
    if (!decided && !first_chunk_outputs.defined()) {
      first_chunk_outputs = chunk.outputs;
    } else if (!decided) {
      beside_decoder = chunk.outputs.const_data_ptr() != first_chunk_outputs.const_data_ptr();
      decided = true;
      first_chunk_outputs.reset();
    }
    if (next) {
      decoded[b ^ 1].block(side);  // codes[b ^ 1] was read by the previous chunk's decoder
      enqueue_codes(b ^ 1, *next);
    }
    std::map<std::string, at::Tensor> unit_sums;
    if (beside_decoder) decoded[b].block(statistics);
    {
      const c10::StreamGuard on_statistics(beside_decoder ? statistics : compute);
      // The decoder's outputs were allocated on `compute`: kept for this stream's reads.
      if (beside_decoder) chunk.outputs.record_stream(statistics);
      if (chunk.first_of_unit && edges.reset) stats.reset(chunk.start, chunk.unit_stop);
      chunk.effect = stats.update(chunk.outputs, chunk.start);
      if (chunk.last_of_unit && !edges.unit_done.is_none()) unit_sums = stats.unit_sums_to_host();
    }
    if (!beside_decoder) {
      c10::Event computed(device.type());
      computed.record(compute);
      computed.block(statistics);
      chunk.outputs.record_stream(statistics);
      chunk.effect.record_stream(statistics);
    }
    {  // the copies to the host, on the statistics stream
      const c10::StreamGuard on_statistics(statistics);
      if (copy_outputs) {
        if (!host_outputs[b].defined()) host_outputs[b] = pinned({batch_size_, features_}, chunk.outputs.scalar_type());
        host_outputs[b].narrow(0, 0, chunk.count).copy_(chunk.outputs, /*non_blocking=*/true);
      }
      host_effect[b].narrow(0, 0, chunk.count).copy_(chunk.effect, /*non_blocking=*/true);
      copied[b].record(statistics);
    }
    if (pending) deliver_pending();  // the previous chunk, while the GPU works on this one
    pending.emplace(Pending{chunk, b, std::move(unit_sums)});
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
  if (pending) deliver_pending();
}

}  // namespace latentsweep
