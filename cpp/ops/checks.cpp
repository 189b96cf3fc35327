#include "checks.h"

#include <c10/core/Layout.h>
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
  const at::Device first = tensors.begin()->second->device();
  const bool same = std::all_of(tensors.begin(), tensors.end(),
                                [&](const auto& named) { return named.second->device() == first; });
  if (same) return;
  std::ostringstream where;
  const char* separator = "";
  for (const auto& [name, tensor] : tensors) {
    where << separator << name << " on " << tensor->device();
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
  if (out.numel() == 0 || input.numel() == 0 || !out.has_storage() || !input.has_storage()) return;
  if (!out.storage().is_alias_of(input.storage()) || out.device() != input.device()) return;
  const auto [out_first, out_last] = byte_extent(out);
  const auto [in_first, in_last] = byte_extent(input);
  TORCH_CHECK_VALUE(out_last <= in_first || in_last <= out_first, fn, ": out shares memory with ",
                    name, "; pass a separate buffer (the op reads ", name,
                    " while it writes out)");
}

int64_t checked_product(int64_t a, int64_t b, int64_t c) {
  const __int128 product = static_cast<__int128>(a) * b * c;
  return product > std::numeric_limits<int64_t>::max() ? -1 : static_cast<int64_t>(product);
}

}  // namespace latentsweep
