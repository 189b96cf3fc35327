// Autograd for the grid ops, latentsweep::traversal_codes and latentsweep::direction_codes.
//
// Row g of a grid (a, k, s = unravel(g, (A, K, S))) is, for a traversal,
//   codes[g] = anchors[a] with column dims[k] replaced by values[a, k, s]
// and, along a unit direction u = directions[k],
//   codes[g] = anchors[a] + (values[a, k, s] - <anchors[a], u>) u.
// So, with G the incoming gradient of the written rows:
//   traversal:  d/danchors[a] += G[g] without column dims[k];  d/dvalues[a, k, s] += G[g, dims[k]]
//   direction:  d/danchors[a] += G[g] - <G[g], u> u;            d/dvalues[a, k, s] += <G[g], u>
//               d/du          += (values[a, k, s] - <anchors[a], u>) G[g] - <G[g], u> anchors[a]
// (the derivative of the formula as written: the op requires unit directions but does not
// normalise them). Only the rows [start, start + count) that were written contribute, and a
// broadcast `values` ([S], [K, S]) sums the gradients of the grid entries it stands for.
//
// The backward passes are torch ops of size rows x D (no grid of all A x K x S values), in
// float32 for float16/bfloat16 (index_add in half precision loses small contributions), and
// differentiable themselves, so double backward works. The out= forms record no graph: they
// refuse inputs that require grad while grad mode is on, as torch's own out= functions do.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/VariableTypeUtils.h>
#include <torch/library.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include "checks.h"
#include "direction_codes.h"
#include "traversal_codes.h"

#include <initializer_list>
#include <utility>
#include <vector>

namespace latentsweep {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using GridOp = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                          std::optional<int64_t>);
using GridIntoOp = void(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                        std::optional<int64_t>, at::Tensor&);

c10::TypedOperatorHandle<GridOp> grid_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<GridOp>();
}

c10::TypedOperatorHandle<GridIntoOp> grid_into_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<GridIntoOp>();
}

// Where each written row sits in the grid: its anchor, its item (latent or direction) and
// the flat index of its value in `values` as given (broadcast dimensions of size 1 map to 0).
// Sizes stay SymInts, so a traced backward keeps them symbolic as the forward does.
struct GridRows {
  at::Tensor anchor, item, value;
};

GridRows grid_rows(int64_t start, const c10::SymInt& rows, const c10::SymInt& items,
                   const std::vector<c10::SymInt>& value_sizes, const at::TensorOptions& index_options) {
  const c10::SymInt steps = value_sizes.back();
  const at::Tensor g = at::arange(c10::Scalar(start), c10::Scalar(rows + start), index_options);
  GridRows where;
  where.anchor = g.div(c10::Scalar(items * steps), "floor");
  where.item = g.div(c10::Scalar(steps), "floor").remainder(c10::Scalar(items));
  at::Tensor flat = g.remainder(c10::Scalar(steps));  // the step
  // values is [S], [K, S] or [A, K, S], each leading dimension of size 1 or the grid's.
  const size_t dims = value_sizes.size();
  const c10::SymInt value_items = dims >= 2 ? value_sizes[dims - 2] : c10::SymInt(1);
  const c10::SymInt value_anchors = dims == 3 ? value_sizes[0] : c10::SymInt(1);
  if (value_items > 1) flat = flat + where.item * c10::Scalar(steps);
  if (value_anchors > 1) flat = flat + where.anchor * c10::Scalar(value_items * steps);
  where.value = flat;
  return where;
}

// The gradient of `values` (as given) from one contribution per written row.
at::Tensor values_gradient(const at::Tensor& per_row, const GridRows& where,
                           const std::vector<c10::SymInt>& value_sizes, at::ScalarType dtype) {
  c10::SymInt numel = 1;
  for (const c10::SymInt& size : value_sizes) numel = numel * size;
  return at::zeros_symint({numel}, per_row.options())
      .index_add(0, where.value, per_row)
      .view_symint(value_sizes)
      .to(dtype);
}

class TraversalCodesFunction : public torch::autograd::Function<TraversalCodesFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& anchors, const at::Tensor& dims,
                            const at::Tensor& values, int64_t start, std::optional<int64_t> count) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = grid_op("latentsweep::traversal_codes");
    at::Tensor codes = op.call(anchors, dims, values, start, count);
    ctx->save_for_backward({dims});
    ctx->saved_data["start"] = start;
    // Sizes as SymInts: reading them as ints would specialise a dynamic-shape graph.
    ctx->saved_data["anchors"] = anchors.sym_sizes();
    ctx->saved_data["values"] = values.sym_sizes();
    ctx->saved_data["dtype"] = static_cast<int64_t>(anchors.scalar_type());
    return codes;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor dims = ctx->get_saved_variables()[0];
    const at::Tensor& grad = grad_outputs[0];  // [rows, D]
    at::Tensor grad_anchors, grad_values;
    if (grad.defined()) {
      const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
      const std::vector<c10::SymInt> anchor_sizes = ctx->saved_data["anchors"].toSymIntVector();
      const std::vector<c10::SymInt> value_sizes = ctx->saved_data["values"].toSymIntVector();
      const at::Tensor g = grad.to(compute_dtype(dtype));
      const GridRows where = grid_rows(ctx->saved_data["start"].toInt(), g.sym_size(0), dims.sym_size(0),
                                       value_sizes, dims.options());
      const at::Tensor columns = dims.index_select(0, where.item).unsqueeze(1);  // [rows, 1]
      if (ctx->needs_input_grad(0)) {
        grad_anchors = at::zeros_symint(anchor_sizes, g.options())
                           .index_add(0, where.anchor, g.scatter(1, columns, 0.0))
                           .to(dtype);
      }
      if (ctx->needs_input_grad(2)) {
        grad_values = values_gradient(g.gather(1, columns).squeeze(1), where, value_sizes, dtype);
      }
    }
    return {grad_anchors, at::Tensor(), grad_values, at::Tensor(), at::Tensor()};
  }
};

class DirectionCodesFunction : public torch::autograd::Function<DirectionCodesFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& anchors,
                            const at::Tensor& directions, const at::Tensor& values, int64_t start,
                            std::optional<int64_t> count) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = grid_op("latentsweep::direction_codes");
    at::Tensor codes = op.call(anchors, directions, values, start, count);
    ctx->save_for_backward({anchors, directions, values});
    ctx->saved_data["start"] = start;
    return codes;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &anchors = saved[0], &directions = saved[1], &values = saved[2];
    const at::Tensor& grad = grad_outputs[0];  // [rows, D]
    at::Tensor grad_anchors, grad_directions, grad_values;
    if (grad.defined()) {
      const auto dtype = anchors.scalar_type();
      const at::Tensor g = grad.to(compute_dtype(dtype));
      const std::vector<c10::SymInt> value_sizes = values.sym_sizes().vec();
      const GridRows where =
          grid_rows(ctx->saved_data["start"].toInt(), g.sym_size(0), directions.sym_size(0), value_sizes,
                    anchors.options().dtype(at::kLong));
      const at::Tensor u = directions.to(g.scalar_type()).index_select(0, where.item);  // [rows, D]
      const at::Tensor along = (g * u).sum(1, /*keepdim=*/true);                     // <G, u>
      if (ctx->needs_input_grad(0)) {
        grad_anchors = at::zeros_symint(anchors.sym_sizes(), g.options())
                           .index_add(0, where.anchor, g - along * u)
                           .to(dtype);
      }
      if (ctx->needs_input_grad(2)) {
        grad_values = values_gradient(along.squeeze(1), where, value_sizes, dtype);
      }
      if (ctx->needs_input_grad(1)) {
        const at::Tensor x = anchors.to(g.scalar_type()).index_select(0, where.anchor);
        const at::Tensor v =
            values.to(g.scalar_type()).reshape({-1}).index_select(0, where.value).unsqueeze(1);
        const at::Tensor moved = v - (x * u).sum(1, /*keepdim=*/true);
        grad_directions = at::zeros_symint(directions.sym_sizes(), g.options())
                              .index_add(0, where.item, moved * g - along * x)
                              .to(directions.scalar_type());
      }
    }
    return {grad_anchors, grad_directions, grad_values, at::Tensor(), at::Tensor()};
  }
};

at::Tensor traversal_codes_autograd(const at::Tensor& anchors, const at::Tensor& dims,
                                    const at::Tensor& values, int64_t start,
                                    std::optional<int64_t> count) {
  return TraversalCodesFunction::apply(anchors, dims, values, start, count);
}

at::Tensor direction_codes_autograd(const at::Tensor& anchors, const at::Tensor& directions,
                                    const at::Tensor& values, int64_t start,
                                    std::optional<int64_t> count) {
  return DirectionCodesFunction::apply(anchors, directions, values, start, count);
}

void refuse_gradients(const char* fn,
                      std::initializer_list<std::pair<const char*, const at::Tensor*>> tensors) {
  if (!at::GradMode::is_enabled()) return;
  for (const auto& [name, tensor] : tensors) {
    TORCH_CHECK_VALUE(!tensor->requires_grad(), fn, ": out= records no gradients, and ", name,
                      " requires grad; call without out= (differentiable) or under torch.no_grad()");
  }
}

// The out= forms below autograd, after the check; the version bump is what torch's own
// in-place kernels do, so a graph that saved `out` notices it was overwritten.
void call_into(const char* name, const at::Tensor& anchors, const at::Tensor& second,
               const at::Tensor& values, int64_t start, std::optional<int64_t> count,
               at::Tensor& out) {
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    grid_into_op(name).call(anchors, second, values, start, count, out);
  }
  torch::autograd::increment_version(out);
}

void traversal_codes_into_autograd(const at::Tensor& anchors, const at::Tensor& dims,
                                   const at::Tensor& values, int64_t start,
                                   std::optional<int64_t> count, at::Tensor& out) {
  refuse_gradients(kTraversalCodesFn, {{"anchors", &anchors}, {"values", &values}, {"out", &out}});
  call_into("latentsweep::traversal_codes_into", anchors, dims, values, start, count, out);
}

void direction_codes_into_autograd(const at::Tensor& anchors, const at::Tensor& directions,
                                   const at::Tensor& values, int64_t start,
                                   std::optional<int64_t> count, at::Tensor& out) {
  refuse_gradients(kDirectionCodesFn, {{"anchors", &anchors}, {"directions", &directions},
                                       {"values", &values}, {"out", &out}});
  call_into("latentsweep::direction_codes_into", anchors, directions, values, start, count, out);
}

}  // namespace

TORCH_LIBRARY_IMPL(latentsweep, Autograd, m) {
  m.impl("traversal_codes", &traversal_codes_autograd);
  m.impl("direction_codes", &direction_codes_autograd);
  m.impl("traversal_codes_into", &traversal_codes_into_autograd);
  m.impl("direction_codes_into", &direction_codes_into_autograd);
}

}  // namespace latentsweep
