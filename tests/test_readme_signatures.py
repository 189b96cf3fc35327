"""The README's API tables say true things about the signatures: every parameter a signature cell
names exists, is positional or keyword-only as shown, and shows its real default; every required
parameter is shown. Cells that are example calls, not declarations, are listed here by hand, so a
new row the parser cannot read fails until it is fixed or listed."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import latentsweep as ls

README = Path(__file__).resolve().parents[1] / "README.md"

# A table row whose first cell opens with a code span that looks like a call (the maintainer's
# `grep -n '^| \`[a-zA-Z_.]*(' README.md`).
SIGNATURE_ROW = re.compile(r"^\| `[a-zA-Z_.]*\(")

# Code spans that are not declarations, with a one-word reason; exact text, `\|` unescaped.
NOT_DECLARATIONS = {
    "traverse(decoder, anchors, directions=u, ...)": "example",
    "traversal_values(anchors, mode=..., directions=u)": "example",
    'effect_bars({"prior": r1, "posterior": r2})': "example",
    "report(path, *, diagnosis=, posterior=, results=, ...)": "placeholders",
    "(start, count)": "vocabulary",
}

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def signature_spans() -> list[tuple[int, str]]:
    """(line number, code span) for every code span in the first cell of a signature row."""
    spans = []
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1):
        if not SIGNATURE_ROW.match(line):
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]  # an escaped `\|` is a choice list, not a cell
        for span in re.findall(r"`([^`]*)`", first_cell):
            spans.append((number, span.replace("\\|", "|")))
    return spans


SPANS = signature_spans()
DECLARATIONS = [(n, s) for n, s in SPANS if s not in NOT_DECLARATIONS]


def resolve(name: str):
    """`plots.direction_grid` -> ls.plots.direction_grid; `Directions.from_vectors` likewise."""
    target = ls
    for part in name.split("."):
        assert hasattr(target, part), f"README names {name!r}, but latentsweep has no {part!r} there"
        target = getattr(target, part)
    return target


def parse_declaration(span: str) -> tuple[str, ast.arguments, bool]:
    """The name, the parameters (as a `def`'s) and whether the cell ends in `...` (partial).

    Raises AssertionError for a span that is not a declaration this test can read."""
    match = re.fullmatch(r"([A-Za-z_][A-Za-z_0-9.]*)\((.*)\)", span)
    assert match, f"cannot classify README signature {span!r}: not `name(parameters)`"
    name, params = match.groups()
    partial = re.search(r"(^|,\s*)\.\.\.$", params) is not None
    if partial:
        params = re.sub(r"(^|,\s*)\.\.\.$", "", params)
    try:
        tree = ast.parse(f"def f({params}): pass")
    except SyntaxError as error:
        raise AssertionError(
            f"cannot classify README signature {span!r} ({error.msg}): make it a declaration, or list "
            "it in NOT_DECLARATIONS with a reason"
        ) from None
    return name, tree.body[0].args, partial


def shown_default_matches(node: ast.expr, real) -> bool:
    """`0`, `"prior"`, `None`: a literal equal to the real default; `torch.float32`: its repr;
    `"linear"|"slerp"`: a choice list whose first entry is the default."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        while isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            node = node.left
        return shown_default_matches(node, real)
    try:
        shown = ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node) == repr(real)
    if isinstance(shown, bool) or isinstance(real, bool):  # True == 1, but `anchor=True` is not `anchor=1`
        return shown is real
    return shown == real and (type(shown) is type(real) or {type(shown), type(real)} == {int, float})


def test_the_readme_has_signature_rows_and_every_listed_exception_is_still_there():
    assert len(DECLARATIONS) >= 20
    stale = set(NOT_DECLARATIONS) - {s for _, s in SPANS}
    assert not stale, f"NOT_DECLARATIONS lists cells the README no longer has: {sorted(stale)}"


@pytest.mark.parametrize(("line", "span"), DECLARATIONS, ids=[s for _, s in DECLARATIONS])
def test_the_signature_cell_matches_the_code(line, span):
    name, shown, _partial = parse_declaration(span)
    where = f"README.md:{line} `{span}`"
    real = inspect.signature(resolve(name)).parameters

    assert not (shown.vararg or shown.kwarg or shown.posonlyargs), f"{where}: shows *args, **kwargs or /"
    defaults = [None] * (len(shown.args) - len(shown.defaults)) + list(shown.defaults)
    listed = [(a.arg, d, True) for a, d in zip(shown.args, defaults)]
    listed += [(a.arg, d, False) for a, d in zip(shown.kwonlyargs, shown.kw_defaults)]

    for param, default, positional in listed:
        assert param in real, f"{where}: {name} has no parameter {param!r} (it has {list(real)})"
        kind = real[param].kind
        if positional:
            assert kind in POSITIONAL, f"{where}: {param!r} is shown positional but is {kind.description}"
        else:
            assert kind is inspect.Parameter.KEYWORD_ONLY, (
                f"{where}: {param!r} is shown keyword-only but is {kind.description}"
            )
        real_default = real[param].default
        if default is None:
            continue  # shown without a default: only a name
        assert real_default is not inspect.Parameter.empty, (
            f"{where}: {param!r} is required, shown with a default"
        )
        assert shown_default_matches(default, real_default), (
            f"{where}: {param!r} is shown with default {ast.unparse(default)}, the code's is {real_default!r}"
        )

    # Positional parameters are shown in the code's order, from the first.
    real_positional = [p for p, v in real.items() if v.kind in POSITIONAL]
    shown_positional = [a.arg for a in shown.args]
    assert real_positional[: len(shown_positional)] == shown_positional, (
        f"{where}: positional parameters shown {shown_positional}, the code's are {real_positional}"
    )
    # A reader calling it as shown must not miss a required argument.
    required = [p for p, v in real.items() if v.default is inspect.Parameter.empty and v.kind not in VARIADIC]
    missing = [p for p in required if p not in shown_positional + [a.arg for a in shown.kwonlyargs]]
    assert not missing, f"{where}: required parameters not shown: {missing}"


@pytest.mark.parametrize("span", [s for s in NOT_DECLARATIONS if NOT_DECLARATIONS[s] != "vocabulary"])
def test_the_example_cells_name_real_functions_and_keywords(span):
    """Not declarations, but what they do name must exist."""
    name = re.match(r"([A-Za-z_][A-Za-z_0-9.]*)\(", span).group(1)
    real = inspect.signature(resolve(name)).parameters
    for keyword in re.findall(r"(?:\(|,\s*)([A-Za-z_]\w*)=", span):
        assert keyword in real, f"README `{span}`: {name} has no parameter {keyword!r}"


@pytest.mark.parametrize(
    "span",
    [
        "f(x, ...extra)",  # `...` not at the end
        "f(x, *, y=)",  # a placeholder
        'f({"a": 1})',  # an example call
        "(start, count)",  # no name
    ],
)
def test_a_cell_that_is_not_a_readable_declaration_fails_rather_than_being_skipped(span):
    with pytest.raises(AssertionError, match="cannot classify"):
        parse_declaration(span)
