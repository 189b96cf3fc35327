"""Decoders as people write them: outputs wrapped in tuples, dicts or output objects, logits
that need an activation, and modules whose parameters have another dtype than the codes.

:func:`decoder_call` turns any of them into the plain ``[B, D] -> [B, ...]`` tensor function
that :func:`latentsweep.traverse` decodes with. The rule for picking the output tensor is
written once, here (``OUTPUT_RULE``), and quoted by the docs and the error messages.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping

import torch

from ._modules import parameter_dtype

# Keys (or attribute names) tried, in order, when a decoder returns a dict or an output
# object: diffusers' DecoderOutput.sample first, then the usual names of a reconstruction.
OUTPUT_KEYS = ("sample", "x_hat", "x_recon", "recon", "reconstruction", "x", "output", "logits", "mean", "loc")
OUTPUT_RULE = (
    "a tensor is used as it is; a tuple or list gives its first element; a dict or an output "
    f"object gives the tensor under the first of {', '.join(OUTPUT_KEYS)} that holds one, or its "
    "only tensor; a torch.distributions.Distribution gives its mean"
)
# Named output transforms (any callable on the output tensor works too).
OUTPUT_TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "exp": torch.exp,
}


class DecoderCall:
    """A user's decoder as a plain tensor function (see :func:`decoder_call`).

    Attributes:
        decoder: the callable as given (its module decides eval mode, device and dtype).
        output_space: what the returned tensors are, in words, e.g. ``"decoder output"`` or
            ``"sigmoid(decoder output['sample'])"``: the space the effects are measured in.
    """

    def __init__(self, fn: str, decoder, output, output_transform, latent_shape=None):
        self.fn = fn
        self.decoder = decoder
        # Structured latents: the grid's flat [B, D] rows reach the decoder as [B, *latent_shape].
        self.latent_shape = tuple(latent_shape) if latent_shape is not None and len(latent_shape) > 1 else None
        self.output = output
        self.transform, transform_name = _transform(fn, output_transform)
        self.input_dtype = parameter_dtype(decoder)
        space = "decoder output" + _selection_text(output)
        self.output_space = space if transform_name is None else f"{transform_name}({space})"
        # Who made a NaN or Inf output, as errors say it: an output_transform ("exp") may make
        # Inf of the decoder's finite outputs.
        self.nonfinite_subject = "the decoder returned" if transform_name is None else f"{self.output_space} is"
        # A distribution's mean is scanned once (whether it is defined is its class's property):
        # a scan per batch would wait for the device every time.
        self._mean_checked = False
        self._scan_codes = True  # see _cast and trust_codes_within
        # How the caller brings its codes within the parameters' range (_cast's advice): the
        # sweep's own arguments (traverse's span= could not help interpolate, which has none).
        self.range_advice: Callable[[], str] = lambda: "decode smaller codes, or run the decoder in a wider dtype"

    def trust_codes_within(self, bound: float | None) -> None:
        """No scan of each batch's cast codes once every code is known to lie within ``bound``
        (e.g. :meth:`GridSpec.code_bound`), inside the parameters' range: on a GPU the scan made
        each batch wait for the device (a float16 MLP's sweep took 1.4x as long)."""
        if bound is not None and self.input_dtype is not None and self.input_dtype.is_floating_point:
            # (a margin for the rounding of codes computed in the grid's dtype)
            self._scan_codes = not bound * (1 + 2**-10) <= torch.finfo(self.input_dtype).max

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        if self.input_dtype is not None and codes.dtype != self.input_dtype:
            codes = self._cast(codes)  # the grid keeps its own precision
        if self.latent_shape is not None:
            codes = codes.reshape(codes.shape[0], *self.latent_shape)  # a view of the (contiguous) buffer
        raw = self.decoder(codes)
        readable = not _capturing(codes)
        result, part = _select(self.fn, raw, self.output, check=readable and not self._mean_checked)
        self._mean_checked = self._mean_checked or readable
        if part is not None and not _one_per_code(result, codes.shape[0]):
            # The part picked from a tuple, dict or object (the decoder itself returned none of
            # them): said as such, not as "the decoder returned shape ()" or "... got NoneType".
            advice = "pass output= (a key or attribute name, a tuple index or a function of the output) to pick the " \
                "decoded outputs"
            if not isinstance(result, torch.Tensor):
                raise TypeError(f"{self.fn}: the decoder must return a torch.Tensor, got {type(raw).__name__}, and the "
                                f"part of it used ({part}) is {_described(result)}; {advice}")
            raise ValueError(
                f"{self.fn}: the decoder returned a {type(raw).__name__}, and the part of it used ({part}) has shape "
                f"{tuple(result.shape)} for a batch of {codes.shape[0]} codes; it must be one output per code "
                f"([batch, ...]): {advice}"
            )
        if self.transform is not None and isinstance(result, torch.Tensor):
            result = self.transform(result)
            if not isinstance(result, torch.Tensor):
                raise TypeError(
                    f"{self.fn}: output_transform must return a tensor, got {type(result).__name__}"
                )
            if not _one_per_code(result, codes.shape[0]):
                raise ValueError(
                    f"{self.fn}: output_transform returned shape {tuple(result.shape)} for a batch of "
                    f"{codes.shape[0]} codes; it must keep one output per code ([batch, ...])"
                )
            if not result.is_floating_point():
                raise TypeError(f"{self.fn}: output_transform must return floating-point outputs, got {result.dtype}")
        return result

    def _cast(self, codes: torch.Tensor) -> torch.Tensor:
        """The codes in the parameters' dtype. A narrower range (float16 parameters) turned codes
        beyond it into infinities, which the decoder then got, and the error blamed it for them
        (or a tanh made finite outputs of them). Scanned only where the range is much narrower
        (bfloat16's is float32's to within 0.4%) and the codes are not known to fit
        (:meth:`trust_codes_within`): a scan makes each batch wait for the device."""
        cast = codes.to(self.input_dtype)
        if (codes.is_floating_point() and self.input_dtype.is_floating_point
                and self._scan_codes and torch.finfo(self.input_dtype).max < torch.finfo(codes.dtype).max / 2
                and not _capturing(codes)
                and cast.numel() and not bool(torch.isfinite(cast).all())):
            largest = torch.finfo(self.input_dtype).max
            raise ValueError(
                f"{self.fn}: the codes reach beyond the largest {self.input_dtype} ({largest:.4g}), the dtype of "
                f"the decoder's parameters they are cast to (codes of {float(codes.abs().max()):.4g}); "
                f"{self.range_advice()}"
            )
        return cast


def decoder_call(fn: str, decoder, *, output=None, output_transform=None, latent_shape=None) -> DecoderCall:
    """Wraps ``decoder`` so that it returns one tensor, transformed, from codes in its dtype.

    Args:
        fn: the public function's name, for error messages.
        decoder: any callable on ``[B, D]`` codes.
        output: which part of the decoder's output to use: ``None`` for the rule below, a key or
            attribute name (``"sample"``), a tuple index (``0``), or a callable taking the raw
            output and returning the tensor. The rule: {rule}.
        output_transform: ``None``, a name in ``OUTPUT_TRANSFORMS`` (``"sigmoid"`` for a decoder
            that returns logits, ``"tanh"``, ``"exp"``), or any callable on the output tensor.
        latent_shape: the shape of one code as the decoder takes it (structured latents, e.g.
            ``(4, 8, 8)``): flat ``[B, D]`` codes are passed as ``[B, *latent_shape]``. ``None``
            or a 1-D shape: codes are passed flat.

    Floating codes are cast to the dtype of the decoder's (or its module's) parameters when it
    has some, so float64 anchors work with a float32 model; the grid keeps its own dtype. Codes
    beyond that dtype's range (a float16 model's +-65504) are refused, not passed on as infinities.
    """
    if not callable(decoder):
        raise TypeError(f"{fn}: decoder must be callable ([B, D] -> [B, ...]), got {type(decoder).__name__}")
    if output is not None and not (
        isinstance(output, str) or callable(output)
        or (isinstance(output, numbers.Integral) and not isinstance(output, bool))
    ):
        raise TypeError(
            f"{fn}: output must be None, a key or attribute name, a tuple index or a callable, "
            f"got {type(output).__name__}"
        )
    return DecoderCall(fn, decoder, output, output_transform, latent_shape)


if decoder_call.__doc__ is not None:  # (python -OO strips docstrings: None, and importing failed)
    decoder_call.__doc__ = decoder_call.__doc__.format(rule=OUTPUT_RULE)


def select_output(fn: str, raw, output=None):
    """The output tensor from whatever the decoder returned (see ``OUTPUT_RULE``). Anything that
    is not a tensor is returned unchanged, for the caller's own type check to report."""
    return _select(fn, raw, output)[0]


def _select(fn: str, raw, output, *, check: bool = True):
    """(the output as :func:`select_output` picks it, what was picked in words, or None when it
    is ``raw`` itself). ``check``: scan a distribution's mean (not during a CUDA graph's capture,
    which cannot read values)."""
    if output is None:
        return _default_output(fn, raw, check)
    if callable(output) and not isinstance(output, str):
        return output(raw), f"output={_selection_text(output).removeprefix(' via ')}"
    if isinstance(output, str):
        if isinstance(raw, Mapping):
            if output not in raw:
                raise ValueError(f"{fn}: output={output!r}, but the decoder returned a dict with keys {list(raw)}")
            return raw[output], f"output={output!r}"
        if not hasattr(raw, output):
            raise ValueError(
                f"{fn}: output={output!r}, but the decoder returned a {type(raw).__name__} without "
                "such a key or attribute"
            )
        return getattr(raw, output), f"output={output!r}"
    if not isinstance(raw, (tuple, list)):
        raise ValueError(f"{fn}: output={output} is a tuple index, but the decoder returned a {type(raw).__name__}")
    if not -len(raw) <= output < len(raw):
        raise ValueError(f"{fn}: output={output} is out of range for the decoder's {len(raw)} outputs")
    return raw[output], f"output={int(output)}"


def _default_output(fn: str, raw, check: bool = True):
    if isinstance(raw, torch.Tensor):
        return raw, None
    if isinstance(raw, torch.distributions.Distribution):
        return _mean(fn, raw, check), "its mean"
    if isinstance(raw, Mapping):  # also diffusers' BaseOutput, an OrderedDict
        # (as for an output object's attributes: a key holding None, such as an unused "sample",
        # is passed over)
        lowered = {str(k).lower(): k for k in raw}
        key = next((lowered[k] for k in OUTPUT_KEYS if k in lowered and isinstance(raw[lowered[k]], torch.Tensor)),
                   None)
        if key is not None:
            return raw[key], f"its entry {key!r}"
        tensors = [k for k, v in raw.items() if isinstance(v, torch.Tensor)]
        if len(tensors) == 1:
            return raw[tensors[0]], f"its only tensor, {tensors[0]!r}"
        raise TypeError(
            f"{fn}: the decoder returned a dict with keys {list(raw)}; no tensor is under one of "
            f"{list(OUTPUT_KEYS)}, so pass output='<key>' to say which one holds the decoded outputs"
        )
    if isinstance(raw, (tuple, list)):
        if not raw:
            raise TypeError(f"{fn}: the decoder returned an empty {type(raw).__name__}")
        return raw[0], "its first element"
    for name in OUTPUT_KEYS:
        value = getattr(raw, name, None)
        if isinstance(value, torch.Tensor):
            return value, f"its attribute {name!r}"
    # An output object's only tensor, as a dict's (the rule says so for both; objects were
    # returned as they were, and refused as "must return a torch.Tensor").
    tensors = {name: value for name, value in _attributes(raw).items() if isinstance(value, torch.Tensor)}
    if len(tensors) == 1:
        (name, value), = tensors.items()
        return value, f"its only tensor, {name!r}"
    if tensors:
        raise TypeError(
            f"{fn}: the decoder returned a {type(raw).__name__} with tensors {list(tensors)}; none is one of "
            f"{list(OUTPUT_KEYS)}, so pass output='<attribute>' to say which one holds the decoded outputs"
        )
    return raw, None


def _attributes(raw) -> dict:
    """An output object's fields (a dataclass's, or its instance attributes); {} for others."""
    if dataclasses.is_dataclass(raw) and not isinstance(raw, type):
        return {field.name: getattr(raw, field.name, None) for field in dataclasses.fields(raw)}
    try:
        return dict(vars(raw))
    except TypeError:  # no __dict__ (a generator, an int)
        return {}


def _mean(fn: str, distribution: torch.distributions.Distribution, check: bool) -> torch.Tensor:
    """A distribution's mean, or a TypeError where torch.distributions gives none: it raised
    NotImplementedError (TransformedDistribution), or it is NaN or infinite everywhere
    (Categorical, Cauchy), which was reported as "the decoder returned NaN or Inf"."""
    name = type(distribution).__name__
    advice = "pass output= a function that picks the tensor to use from it (e.g. output=lambda d: d.probs, or d.loc)"
    try:
        mean = distribution.mean
    except NotImplementedError:
        raise TypeError(f"{fn}: the decoder returned a {name}, which has no mean in torch.distributions; "
                        f"{advice}") from None
    if check and isinstance(mean, torch.Tensor) and mean.numel() and mean.is_floating_point() \
            and not bool(torch.isfinite(mean).any()):
        raise TypeError(f"{fn}: the decoder returned a {name}, whose mean is undefined (NaN or infinite); {advice}")
    return mean


def _one_per_code(result, batch: int) -> bool:
    return isinstance(result, torch.Tensor) and result.dim() >= 1 and result.shape[0] == batch


def _described(value) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


def _capturing(codes: torch.Tensor) -> bool:
    """A CUDA graph is being captured (the decoder inside ``graphed``): no value can be read."""
    return codes.is_cuda and torch.cuda.is_current_stream_capturing()


def _transform(fn: str, output_transform):
    """(callable or None, name for the output space or None)."""
    if output_transform is None:
        return None, None
    if isinstance(output_transform, str):
        if output_transform not in OUTPUT_TRANSFORMS:
            raise ValueError(
                f"{fn}: output_transform must be one of {', '.join(map(repr, OUTPUT_TRANSFORMS))} "
                f"or a callable, got {output_transform!r}"
            )
        return OUTPUT_TRANSFORMS[output_transform], output_transform
    if not callable(output_transform):
        raise TypeError(
            f"{fn}: output_transform must be None, a name ({', '.join(OUTPUT_TRANSFORMS)}) or a "
            f"callable, got {type(output_transform).__name__}"
        )
    name = getattr(output_transform, "__name__", None) or type(output_transform).__name__
    return output_transform, "<lambda>" if name == "<lambda>" else name


def _selection_text(output) -> str:
    if output is None:
        return ""
    if isinstance(output, str):
        return f"[{output!r}]"
    if isinstance(output, numbers.Integral):
        return f"[{int(output)}]"
    name = getattr(output, "__name__", None) or type(output).__name__
    return f" via {name}"
