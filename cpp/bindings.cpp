// The pybind11 module latentsweep._C: importing it registers the ops (their static
// initialisers run) and exposes the non-tensor helpers.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <optional>

#include "engine/cpu/reusing_allocator.h"
#include "engine/executor.h"
#include "engine/statistics.h"
#include "ops/cpu/huge_pages.h"
#include "latentsweep/normal_stream.h"
#include "ops/cpu/capability.h"

namespace {

pybind11::dict build_info() {
  pybind11::dict info;
  info["version"] = LATENTSWEEP_VERSION;
  info["torch"] = LATENTSWEEP_TORCH_VERSION;  // torch.__version__ at build time
  info["cuda"] = static_cast<bool>(LATENTSWEEP_WITH_CUDA);
  info["cuda_version"] = LATENTSWEEP_WITH_CUDA ? pybind11::object(pybind11::str(LATENTSWEEP_CUDA_VERSION))
                                               : pybind11::object(pybind11::none());
  info["cuda_archs"] = LATENTSWEEP_CUDA_ARCHS;
  info["cpu_threads"] = at::get_num_threads();
  info["cpu_avx2"] = latentsweep::cpu::cpu_has_avx2();
  // The CPU kernels in use: LATENTSWEEP_CPU_CAPABILITY, or the best this CPU supports.
  info["cpu_capability"] = latentsweep::cpu::cpu_capability_name(latentsweep::cpu::cpu_capability());
  info["avx2_kernels"] = static_cast<bool>(LATENTSWEEP_HAVE_AVX2_KERNELS);
  info["compiler"] = __VERSION__;
  return info;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "latentsweep's compiled core (ops are registered under torch.ops.latentsweep)";
  m.def("build_info", &build_info, "How this extension was built, and the CPU threads in use.");
  m.def(
      "empty_prefer_huge_pages",
      [](std::vector<int64_t> sizes, at::ScalarType dtype) {
        return latentsweep::cpu::empty_prefer_huge_pages(sizes, at::TensorOptions().dtype(dtype));
      },
      pybind11::arg("sizes"), pybind11::arg("dtype"),
      "An uninitialised CPU tensor whose untouched pages may become transparent huge pages.");
  using latentsweep::SweepExecutor;
  using latentsweep::SweepStatistics;
  pybind11::class_<SweepStatistics>(m, "SweepStatistics",
                                    "Exact streaming statistics of a sweep (see cpp/engine/statistics.h).")
      .def(pybind11::init<const at::Tensor&, const at::Tensor&>(), pybind11::arg("anchor_outputs"),
           pybind11::arg("values"))
      .def("update", &SweepStatistics::update, pybind11::arg("outputs"), pybind11::arg("start"),
           pybind11::call_guard<pybind11::gil_scoped_release>())
      .def("reset", &SweepStatistics::reset, pybind11::arg("start_row"), pybind11::arg("stop_row") = -1)
      .def_property_readonly("sensitivity_rows", &SweepStatistics::sensitivity_rows)
      .def("invalidate", &SweepStatistics::invalidate)
      .def_property_readonly("next_row", &SweepStatistics::next_row)
      .def_property_readonly("total_rows", &SweepStatistics::total_rows)
      .def("dim_effect", &SweepStatistics::dim_effect)
      .def("sensitivity", &SweepStatistics::sensitivity)
      .def("unit_sums_to_host", &SweepStatistics::unit_sums_to_host)
      .def("touched_latents", &SweepStatistics::touched_latents)
      .def("state", &SweepStatistics::state)
      .def("load_state", &SweepStatistics::load_state, pybind11::arg("state"))
      .def("_set_generic_path", &SweepStatistics::set_generic_path, pybind11::arg("on"));
  pybind11::class_<SweepExecutor>(m, "SweepExecutor",
                                  "Decoder batching over the traversal grid (see cpp/engine/executor.h).")
      .def(pybind11::init<std::string, pybind11::object, at::Tensor, at::Tensor, at::Tensor, int64_t,
                          std::vector<int64_t>, pybind11::object, bool, pybind11::object, std::string>(),
           pybind11::arg("fn"), pybind11::arg("decoder"), pybind11::arg("anchors"), pybind11::arg("dims"),
           pybind11::arg("values"), pybind11::arg("batch_size"), pybind11::arg("out_shape"),
           pybind11::arg("code_writer") = pybind11::none(), pybind11::arg("pad_short_chunks") = true,
           pybind11::arg("out_dtype") = pybind11::none(),
           pybind11::arg("nonfinite_subject") = "the decoder returned")
      .def("run", &SweepExecutor::run, pybind11::arg("stats"), pybind11::arg("first_row"),
           pybind11::arg("end_row"), pybind11::arg("sink"), pybind11::arg("copy_outputs"),
           pybind11::arg("progress"))
      .def("run_units", &SweepExecutor::run_units, pybind11::arg("stats"), pybind11::arg("units"),
           pybind11::arg("sink"), pybind11::arg("copy_outputs"), pybind11::arg("progress"),
           pybind11::arg("unit_done"))
      .def_property_readonly("batch_size", &SweepExecutor::batch_size);
  // The generator's counter limits (cpp/latentsweep/normal_stream.h), defined once there.
  m.attr("MAX_ROW_COUNTER") = latentsweep::kMaxRowCounter;
  m.attr("MAX_SAMPLE_COUNTER") = latentsweep::kMaxSampleCounter;
  m.attr("MAX_LATENT_SIZE") = latentsweep::kMaxDimCounter;
  m.attr("MAX_ABS_NORMAL") = latentsweep::kMaxAbsNormal;  // cpp/latentsweep/normal.h
  // A Python context manager over the C++ guard (entered and left exactly at `with`).
  struct ReuseCpuBuffersScope {
    std::optional<latentsweep::cpu::ReuseCpuBuffers> guard;
  };
  pybind11::class_<ReuseCpuBuffersScope>(
      m, "reuse_cpu_buffers",
      "Context manager: while entered, torch's CPU allocator keeps large freed blocks and reuses\n"
      "them (no page faults for repeated same-sized allocations; see\n"
      "cpp/engine/cpu/reusing_allocator.h). CPU sweeps use it; benchmarks use it for the floor.")
      .def(pybind11::init<>())
      .def("__enter__",
           [](pybind11::object self) {
             auto& scope = self.cast<ReuseCpuBuffersScope&>();
             if (!scope.guard) scope.guard.emplace();
             return self;
           })
      .def("__exit__", [](ReuseCpuBuffersScope& scope, pybind11::args) {
        scope.guard.reset();
        return false;
      });
  m.def(
      "_reuse_counters",
      []() {
        const auto c = latentsweep::cpu::reuse_counters();
        pybind11::dict d;
        d["active"] = c.active;
        d["reused"] = c.reused;
        d["allocated"] = c.allocated;
        d["kept_bytes"] = c.kept_bytes;
        d["in_use_bytes"] = c.in_use_bytes;
        d["peak_bytes"] = c.peak_bytes;
        return d;
      },
      "What the reusing CPU allocator did so far, and its large blocks in use and their peak.");
  m.def("_reset_reuse_peak", &latentsweep::cpu::reset_reuse_peak,
        "Starts a new peak of the reusing CPU allocator's large blocks in use; returns the bytes in use.");
}
