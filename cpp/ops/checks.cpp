#include "checks.h"

#include <c10/core/DispatchKeySet.h>
#include <c10/core/Layout.h>
#include <c10/core/TensorOptions.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <limits>
#include <sstream>

namespace latentsweep {

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kComplexHalf: return "torch.complex32";
    case at::kComplexFloat: return "torch.complex64";
    case at::kComplexDouble: return "torch.complex128";
    case at::kBool: return "torch.bool";
    case at::kByte: return "torch.uint8";
    case at::kChar: return "torch.int8";
    case at::kShort: return "torch.int16";
    case at::kInt: return "torch.int32";
    case at::kLong: return "torch.int64";
    default: return std::string("torch.") + c10::toString(dtype);
  }
}

at::Device device_of(const at::Tensor& t) {
  const at::Device device = t.device();
  if (!device.is_meta()) return device;
  const c10::BackendComponent backend = t.key_set().highestBackendKey();
  if (backend == c10::BackendComponent::InvalidBit) return device;
  return at::Device(c10::dispatchKeyToDeviceType(
      c10::toRuntimePerBackendFunctionalityKey(c10::DispatchKey::Dense, backend)));
}

static std::string layout_name(at::Layout layout) {
  switch (layout) {
    case at::kSparse: return "torch.sparse_coo";
    case at::kSparseCsr: return "torch.sparse_csr";
    case at::kSparseCsc: return "torch.sparse_csc";
    case at::kSparseBsr: return "torch.sparse_bsr";
    case at::kSparseBsc: return "torch.sparse_bsc";
    case at::kMkldnn: return "torch._mkldnn";
    case at::kJagged: return "torch.jagged";
    default: return "torch.strided";
  }
}

void check_dense(const at::Tensor& t, const char* fn, const char* name) {
  TORCH_CHECK_TYPE(t.layout() == at::kStrided, fn, ": ", name,
                   " must be a dense (torch.strided) tensor, got layout ",
                   layout_name(t.layout()));
}

void check_floating(const at::Tensor& t, const char* fn, const char* name) {
  const at::ScalarType dtype = t.scalar_type();
  const bool ok = dtype == at::kHalf || dtype == at::kBFloat16 || dtype == at::kFloat ||
                  dtype == at::kDouble;
  TORCH_CHECK_TYPE(ok, fn, ": ", name, " must be float16, bfloat16, float32 or float64, got ",
                   dtype_name(dtype));
}

void check_same_device(const char* fn,
                       std::initializer_list<std::pair<const char*, const at::Tensor*>> tensors) {
  const at::Device first = device_of(*tensors.begin()->second);
  const bool same = std::all_of(tensors.begin(), tensors.end(), [&](const auto& named) {
    return device_of(*named.second) == first;
  });
  if (same) return;
  std::ostringstream where;
  const char* separator = "";
  for (const auto& [name, tensor] : tensors) {
    where << separator << name << " on " << device_of(*tensor);
    separator = ", ";
  }
  TORCH_CHECK_VALUE(false, fn, ": all tensors must be on one device, got ", where.str());
}

// The bytes [first, last) a tensor can touch, from its offset, sizes and strides.
static std::pair<uintptr_t, uintptr_t> byte_extent(const at::Tensor& t) {
  const auto base = reinterpret_cast<uintptr_t>(t.storage().data());
  int64_t low = t.storage_offset(), high = t.storage_offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t reach = (t.size(d) - 1) * t.stride(d);
    (reach < 0 ? low : high) += reach;
  }
  const auto item = static_cast<int64_t>(t.element_size());
  return {base + static_cast<uintptr_t>(low * item), base + static_cast<uintptr_t>((high + 1) * item)};
}

void check_no_overlap(const at::Tensor& out, const at::Tensor& input, const char* fn,
                      const char* name) {
  if (out.device().is_meta() || input.device().is_meta()) return;  // (before numel: sizes may be symbols)
  if (out.numel() == 0 || input.numel() == 0 || !out.has_storage() || !input.has_storage()) return;
  if (!out.storage().is_alias_of(input.storage()) || out.device() != input.device()) return;
  const auto [out_first, out_last] = byte_extent(out);
  const auto [in_first, in_last] = byte_extent(input);
  TORCH_CHECK_VALUE(out_last <= in_first || in_last <= out_first, fn, ": out shares memory with ",
                    name, "; pass a separate buffer (the op reads ", name,
                    " while it writes out)");
}

Product checked_product(const c10::SymInt& a, const c10::SymInt& b, const c10::SymInt& c,
                        int64_t limit) {
  const std::optional<int64_t> ma = a.maybe_as_int(), mb = b.maybe_as_int(), mc = c.maybe_as_int();
  if (ma && mb && mc) {
    const __int128 product = static_cast<__int128>(*ma) * *mb * *mc;
    const bool fits = product <= limit;
    return {c10::SymInt(fits ? static_cast<int64_t>(product) : -1), c10::SymBool(fits)};
  }
  // Start from a symbol: every step is then symbolic, never a product of two plain int64s.
  const c10::SymInt value = !ma ? a * b * c : !mb ? b * a * c : c * a * b;
  return {value, value.sym_le(limit)};
}

c10::SymInt check_grid_rows(const char* fn, const at::Tensor& anchors, const at::Tensor& values,
                            const c10::SymInt& num_traversed, const char* traversed,
                            int64_t start, std::optional<int64_t> count, int64_t bytes_per_value) {
  const c10::SymInt num_anchors = anchors.sym_size(0), latent = anchors.sym_size(1);
  const int64_t leading = values.dim() - 1;  // 0, 1 or 2 of the sizes (A, K) before S
  const bool rank_ok = values.dim() >= 1 && values.dim() <= 3;
  c10::SymBool shape_ok = rank_ok;
  if (rank_ok && leading >= 1) shape_ok = shape_ok & values.sym_size(leading - 1).sym_eq(num_traversed);
  if (rank_ok && leading >= 2) shape_ok = shape_ok & values.sym_size(0).sym_eq(num_anchors);
  TORCH_CHECK_VALUE(holds(shape_ok), fn, ": values must be [S], [K, S] or [A, K, S] with A = ",
                    num_anchors, " anchors and K = ", num_traversed, " ", traversed,
                    ", got shape ", values.sym_sizes());
  const c10::SymInt steps = values.sym_size(-1);
  const Product total = checked_product(num_anchors, num_traversed, steps,
                                        std::numeric_limits<int64_t>::max());
  TORCH_CHECK_VALUE(holds(total.fits), fn, ": the grid has A * K * S = ", num_anchors, " * ",
                    num_traversed, " * ", steps, " rows, which overflows int64");
  TORCH_CHECK_VALUE(start >= 0, fn, ": start must be >= 0, got ", start);
  TORCH_CHECK_VALUE(holds(total.value.sym_ge(start)), fn, ": start must be <= ", total.value,
                    ", got ", start);
  const c10::SymInt rest = total.value - start;
  const c10::SymInt rows = count ? c10::SymInt(*count) : rest;
  TORCH_CHECK_VALUE(holds(rows.sym_ge(0)), fn, ": count must be >= 0, got ", rows);
  TORCH_CHECK_VALUE(holds(rows.sym_le(rest)), fn, ": count must be <= ", rest, ", got ", rows);
  const Product bytes = checked_product(rows, latent, bytes_per_value,
                                        std::numeric_limits<int64_t>::max());
  TORCH_CHECK_VALUE(holds(bytes.fits), fn, ": count * D = ", rows, " * ", latent,
                    " values, whose size in bytes overflows int64");
  return rows;
}

void check_codes_output(const char* fn, const at::Tensor& anchors, const at::Tensor& out,
                        const c10::SymInt& count) {
  check_dense(out, fn, "out");
  const at::Device device = device_of(anchors), out_device = device_of(out);
  const bool ok = out.dim() == 2 && out.scalar_type() == anchors.scalar_type() &&
                  out_device == device &&
                  holds(out.sym_size(0).sym_eq(count) & out.sym_size(1).sym_eq(anchors.sym_size(1)));
  TORCH_CHECK_VALUE(ok, fn, ": out must be [", count, ", ", anchors.sym_size(1), "] ",
                    dtype_name(anchors.scalar_type()), " on ", device, ", got ",
                    out.sym_sizes(), " ", dtype_name(out.scalar_type()), " on ", out_device);
  TORCH_CHECK_VALUE(holds(out.sym_is_contiguous()), fn, ": out must be contiguous");
}

}  // namespace latentsweep
