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

int64_t check_grid_rows(const char* fn, const at::Tensor& anchors, const at::Tensor& values,
                        int64_t num_traversed, const char* traversed, int64_t start,
                        std::optional<int64_t> count, int64_t bytes_per_value) {
  const int64_t num_anchors = anchors.size(0), latent = anchors.size(1);
  const int64_t leading = values.dim() - 1;  // 0, 1 or 2 of the sizes (A, K) before S
  const bool shape_ok = values.dim() >= 1 && values.dim() <= 3 &&
                        (leading < 1 || values.size(leading - 1) == num_traversed) &&
                        (leading < 2 || values.size(0) == num_anchors);
  TORCH_CHECK_VALUE(shape_ok, fn, ": values must be [S], [K, S] or [A, K, S] with A = ",
                    num_anchors, " anchors and K = ", num_traversed, " ", traversed,
                    ", got shape ", values.sizes());
  const int64_t steps = values.size(-1);
  const int64_t total = checked_product(num_anchors, num_traversed, steps);
  TORCH_CHECK_VALUE(total >= 0, fn, ": the grid has A * K * S = ", num_anchors, " * ",
                    num_traversed, " * ", steps, " rows, which overflows int64");
  TORCH_CHECK_VALUE(start >= 0, fn, ": start must be >= 0, got ", start);
  TORCH_CHECK_VALUE(start <= total, fn, ": start must be <= ", total, ", got ", start);
  const int64_t rows = count.value_or(total - start);
  TORCH_CHECK_VALUE(rows >= 0, fn, ": count must be >= 0, got ", rows);
  TORCH_CHECK_VALUE(rows <= total - start, fn, ": count must be <= ", total - start, ", got ",
                    rows);
  const int64_t bytes = checked_product(rows, latent, bytes_per_value);
  TORCH_CHECK_VALUE(bytes >= 0, fn, ": count * D = ", rows, " * ", latent,
                    " values, whose size in bytes overflows int64");
  return rows;
}

void check_codes_output(const char* fn, const at::Tensor& anchors, const at::Tensor& out,
                        int64_t count) {
  check_dense(out, fn, "out");
  const bool ok = out.dim() == 2 && out.size(0) == count && out.size(1) == anchors.size(1) &&
                  out.scalar_type() == anchors.scalar_type() && out.device() == anchors.device();
  TORCH_CHECK_VALUE(ok, fn, ": out must be [", count, ", ", anchors.size(1), "] ",
                    dtype_name(anchors.scalar_type()), " on ", anchors.device(), ", got ",
                    out.sizes(), " ", dtype_name(out.scalar_type()), " on ", out.device());
  TORCH_CHECK_VALUE(out.is_contiguous(), fn, ": out must be contiguous");
}

}  // namespace latentsweep
