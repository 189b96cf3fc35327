// The pybind11 module latentsweep._C: importing it registers the ops (their static
// initialisers run) and exposes the non-tensor helpers.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include "ops/cpu/huge_pages.h"
#include "ops/cpu/sample_kernel.h"

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
  m.def("_set_avx2_enabled", &latentsweep::cpu::set_avx2_enabled, pybind11::arg("enabled"),
        "Switch the AVX2 CPU kernels on or off (for tests); returns the previous setting.");
}
