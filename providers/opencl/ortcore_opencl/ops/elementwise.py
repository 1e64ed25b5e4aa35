"""Elementwise ops: arithmetic, comparisons, logic, bitwise, math functions, activations, Cast, Clip, Where.

Each op is a *builder*: ``builder(info, **attributes)`` returns the
:class:`ortcore_opencl.codegen.Instr` list computing the node's output from
its inputs (the builder's keyword parameters are the op's attributes with the
spec's defaults). The same builders serve single-node kernels (registered
below) and the fused groups of :mod:`ortcore_opencl.fusion`, so a fused chain
computes exactly what its nodes compute one by one.

Identity and Dropout return their input array itself (kernels never write
their inputs, so sharing is safe).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ortcore.dtypes import np_dtype
from ortcore.errors import InvalidArgument
from ortcore_opencl.codegen import MAX_RANK, ElementwiseKernel, Instr, literal
from ortcore_opencl.registry import kernel

F32, F16, F64 = np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.float64)
BOOL = np.dtype(np.bool_)
FLOATS = (F32, F16, F64)
SIGNED = tuple(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64))
UNSIGNED = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64))
INTS = SIGNED + UNSIGNED
NUMERIC = FLOATS + INTS
ALL = NUMERIC + (BOOL,)


class Declined(Exception):
    """A builder cannot express this node (dtype combination or attribute value)."""


@dataclass(frozen=True)
class Info:
    """What a builder knows about its node: input dtypes (None: omitted) and opset."""

    dtypes: tuple[np.dtype | None, ...]
    opset: int

    def dtype(self, i: int = 0) -> np.dtype:
        dt = self.dtypes[i] if i < len(self.dtypes) else None
        if dt is None:
            raise Declined(f"the dtype of input {i} is unknown")
        return dt

    def present(self, i: int) -> bool:
        return i < len(self.dtypes) and self.dtypes[i] is not None


def _x(i: int) -> tuple[str, int]:
    return ("in", i)


def _t(j: int) -> tuple[str, int]:
    return ("tmp", j)


def _one(expr: str, operands: Sequence[tuple[str, int]], dtype: np.dtype, params=()) -> list[Instr]:
    return [Instr(expr, tuple(operands), np.dtype(dtype), tuple((v, dtype) for v in params))]


def _require(dtype: np.dtype, allowed: Sequence[np.dtype], what: str) -> None:
    if dtype not in allowed:
        raise Declined(f"{what} does not support dtype {dtype}")


def _fold(info: Info, expr: str) -> list[Instr]:
    """A variadic op as a left fold of ``expr`` over its inputs (one input passes through)."""
    dt = info.dtype(0)
    n = len(info.dtypes)
    if any(info.dtype(i) != dt for i in range(n)):
        raise Declined("inputs of different dtypes")
    if n == 1:
        return _one("{0}", [_x(0)], dt)
    out = [Instr(expr, (_x(0), _x(1)), dt)]
    for i in range(2, n):
        out.append(Instr(expr, (_t(len(out) - 1), _x(i)), dt))
    return out


_MAX_F = "(isnan({0}) || {0} > {1} ? {0} : {1})"  # numpy's maximum: NaN wins
_MIN_F = "(isnan({0}) || {0} < {1} ? {0} : {1})"

# -- builders --------------------------------------------------------------------------------

BUILDERS: dict[str, Callable[..., list[Instr]]] = {}


def builder(*ops: str) -> Callable[[Callable[..., list[Instr]]], Callable[..., list[Instr]]]:
    def add(fn: Callable[..., list[Instr]]) -> Callable[..., list[Instr]]:
        for op in ops:
            BUILDERS[op] = fn
        return fn

    return add


def _binary(expr: str, allowed: Sequence[np.dtype], out: np.dtype | None = None):
    def build(info: Info) -> list[Instr]:
        dt = info.dtype(0)
        _require(dt, allowed, "this op")
        if info.dtype(1) != dt:
            raise Declined(f"input dtypes {dt} and {info.dtype(1)} differ")
        return _one(expr, [_x(0), _x(1)], out or dt)

    return build


def _unary(expr: str, allowed: Sequence[np.dtype]):
    def build(info: Info) -> list[Instr]:
        dt = info.dtype(0)
        _require(dt, allowed, "this op")
        return _one(expr, [_x(0)], dt)

    return build


for _op, _sym in (("Add", "+"), ("Sub", "-"), ("Mul", "*")):
    BUILDERS[_op] = _binary(f"({{0}} {_sym} {{1}})", NUMERIC)
for _op, _sym in (("Less", "<"), ("Greater", ">"), ("LessOrEqual", "<="), ("GreaterOrEqual", ">=")):
    BUILDERS[_op] = _binary(f"({{0}} {_sym} {{1}})", NUMERIC, BOOL)
BUILDERS["Equal"] = _binary("({0} == {1})", ALL, BOOL)
BUILDERS["And"] = _binary("({0} && {1})", (BOOL,))
BUILDERS["Or"] = _binary("({0} || {1})", (BOOL,))
BUILDERS["Xor"] = _binary("({0} != {1})", (BOOL,))
BUILDERS["Not"] = _unary("(!{0})", (BOOL,))
BUILDERS["Neg"] = _unary("(-{0})", FLOATS + SIGNED)
for _op, _fn in (("Sqrt", "sqrt"), ("Exp", "exp"), ("Log", "log"), ("Floor", "floor"), ("Ceil", "ceil"),
                 ("Sin", "sin"), ("Cos", "cos"), ("Tanh", "tanh"), ("Erf", "erf")):
    BUILDERS[_op] = _unary(f"{_fn}({{0}})", FLOATS)
for _op, _fn in (("Tan", "tan"), ("Asin", "asin"), ("Acos", "acos"), ("Atan", "atan"), ("Sinh", "sinh"),
                 ("Cosh", "cosh"), ("Asinh", "asinh"), ("Acosh", "acosh"), ("Atanh", "atanh"), ("Round", "rint")):
    BUILDERS[_op] = _unary(f"{_fn}({{0}})", FLOATS)  # rint rounds halves to even, as Round requires
for _op, _sym in (("BitwiseAnd", "&"), ("BitwiseOr", "|"), ("BitwiseXor", "^")):
    BUILDERS[_op] = _binary(f"({{0}} {_sym} {{1}})", INTS)
BUILDERS["BitwiseNot"] = _unary("(~{0})", INTS)
BUILDERS["Reciprocal"] = _unary("(({T})1 / {0})", FLOATS)
BUILDERS["Softsign"] = _unary("({0} / (({T})1 + fabs({0})))", FLOATS)
# exp of a negative argument only: cannot overflow for either sign
BUILDERS["Sigmoid"] = _unary(
    "({0} >= 0 ? ({T})1 / (({T})1 + exp(-{0})) : exp({0}) / (({T})1 + exp({0})))", FLOATS
)
# max(x, 0) + log1p(exp(-|x|)): log(1 + exp(x)) without overflow
_SOFTPLUS = "(({0} > 0 ? {0} : ({T})0) + log1p(exp(-fabs({0}))))"
BUILDERS["Softplus"] = _unary(_SOFTPLUS, FLOATS)
BUILDERS["Mish"] = _unary(f"({{0}} * tanh{_SOFTPLUS})", FLOATS)


@builder("Div")
def _div(info: Info) -> list[Instr]:
    """Integer quotients truncate toward zero (C's /); x / 0 gives 0 rather than a trap."""
    dt = info.dtype(0)
    _require(dt, NUMERIC, "Div")
    if info.dtype(1) != dt:
        raise Declined("input dtypes differ")
    if dt in FLOATS:
        expr = "({0} / {1})"
    elif dt in SIGNED:
        # MIN / -1 overflows (and traps on x86): negate instead, which wraps like numpy
        expr = "({1} == 0 ? ({T})0 : ({1} == -1 ? ({T})(-{0}) : {0} / {1}))"
    else:
        expr = "({1} == 0 ? ({T})0 : {0} / {1})"
    return _one(expr, [_x(0), _x(1)], dt)


@builder("Mod")
def _mod(info: Info, *, fmod: int = 0) -> list[Instr]:
    """fmod=1: the dividend's sign (C fmod / %); fmod=0: the divisor's sign (Python %)."""
    dt = info.dtype(0)
    _require(dt, NUMERIC, "Mod")
    if info.dtype(1) != dt:
        raise Declined("input dtypes differ")
    if dt in FLOATS:
        first = Instr("fmod({0}, {1})", (_x(0), _x(1)), dt)
        if fmod:
            return [first]
        # floor semantics (Mod-28 allows fmod=0 on floats): same correction as for integers below
        return [first, Instr("({0} != 0 && (({0} < 0) != ({1} < 0)) ? {0} + {1} : {0})", (_t(0), _x(1)), dt)]
    rem = "({1} == 0 ? ({T})0 : ({1} == -1 ? ({T})0 : {0} % {1}))" if dt in SIGNED else "({1} == 0 ? ({T})0 : {0} % {1})"
    first = Instr(rem, (_x(0), _x(1)), dt)
    if fmod or dt in UNSIGNED:
        return [first]
    # a nonzero remainder whose sign differs from the divisor's moves by one divisor
    return [first, Instr("({0} != 0 && (({0} < 0) != ({1} < 0)) ? {0} + {1} : {0})", (_t(0), _x(1)), dt)]


@builder("Pow")
def _pow(info: Info) -> list[Instr]:
    """The result has the base's type; an integer base needs an integer exponent."""
    base, exponent = info.dtype(0), info.dtype(1)
    if base in FLOATS:
        _require(exponent, NUMERIC, "Pow exponent")
        return _one("pow({0}, ({T}){1})", [_x(0), _x(1)], base)
    if base in (np.dtype(np.int32), np.dtype(np.int64)) and exponent in (np.dtype(np.int32), np.dtype(np.int64)):
        return _one("ipow((long){0}, (long){1})", [_x(0), _x(1)], base)
    raise Declined(f"Pow of {base} by {exponent}")


def _extremum(maximum: bool):
    def build(info: Info) -> list[Instr]:
        dt = info.dtype(0)
        _require(dt, NUMERIC, "Max/Min")
        if dt in FLOATS:
            return _fold(info, _MAX_F if maximum else _MIN_F)
        return _fold(info, "({0} > {1} ? {0} : {1})" if maximum else "({0} < {1} ? {0} : {1})")

    return build


BUILDERS["Max"] = _extremum(True)
BUILDERS["Min"] = _extremum(False)


@builder("Sum")
def _sum(info: Info) -> list[Instr]:
    _require(info.dtype(0), NUMERIC, "Sum")
    return _fold(info, "({0} + {1})")


@builder("Mean")
def _mean(info: Info) -> list[Instr]:
    dt = info.dtype(0)
    _require(dt, FLOATS, "Mean")
    total = _fold(info, "({0} + {1})")
    # the input count is part of the structure (it already sets the kernel's arity)
    return total + [Instr(f"({{0}} / {literal(len(info.dtypes), dt)})", (_t(len(total) - 1),), dt)]


@builder("Abs")
def _abs(info: Info) -> list[Instr]:
    dt = info.dtype(0)
    _require(dt, NUMERIC, "Abs")
    expr = "fabs({0})" if dt in FLOATS else ("({0} < 0 ? -{0} : {0})" if dt in SIGNED else "{0}")
    return _one(expr, [_x(0)], dt)


@builder("Sign")
def _sign(info: Info) -> list[Instr]:
    dt = info.dtype(0)
    _require(dt, NUMERIC, "Sign")
    expr = "(({0} > 0) - ({0} < 0))"
    if dt in FLOATS:  # NaN stays NaN, as in numpy
        expr = f"(isnan({{0}}) ? {{0}} : ({{T}}){expr})"
    return _one(expr, [_x(0)], dt)


@builder("IsNaN")
def _isnan(info: Info) -> list[Instr]:
    _require(info.dtype(0), FLOATS, "IsNaN")
    return _one("isnan({0})", [_x(0)], BOOL)


@builder("IsInf")
def _isinf(info: Info, *, detect_negative: int = 1, detect_positive: int = 1) -> list[Instr]:
    _require(info.dtype(0), FLOATS, "IsInf")
    sign = {(1, 1): "", (1, 0): " && {0} < 0", (0, 1): " && {0} > 0"}.get((int(detect_negative), int(detect_positive)))
    return _one("0" if sign is None else f"(isinf({{0}}){sign})", [_x(0)], BOOL)


@builder("BitShift")
def _bit_shift(info: Info, *, direction: str) -> list[Instr]:
    """Shifts by a negative or >= bit-width amount give 0 (C leaves them undefined)."""
    dt = info.dtype(0)
    _require(dt, UNSIGNED, "BitShift")
    if info.dtype(1) != dt:
        raise Declined("input dtypes differ")
    op = {"LEFT": "<<", "RIGHT": ">>"}.get(direction.decode() if isinstance(direction, bytes) else direction)
    if op is None:
        raise Declined(f"BitShift direction {direction!r}")
    return _one(f"({{1}} < {dt.itemsize * 8} ? ({{T}})({{0}} {op} {{1}}) : ({{T}})0)", [_x(0), _x(1)], dt)


@builder("Shrink")
def _shrink(info: Info, *, bias: float = 0.0, lambd: float = 0.5) -> list[Instr]:
    dt = info.dtype(0)
    _require(dt, NUMERIC, "Shrink")
    if dt not in FLOATS:  # integer inputs with float attributes: compare and add in double
        raise Declined("Shrink on integers")
    return _one("({0} < -{p1} ? {0} + {p0} : ({0} > {p1} ? {0} - {p0} : ({T})0))", [_x(0)], dt, [bias, lambd])


@builder("Swish")
def _swish(info: Info, *, alpha: float = 1.0) -> list[Instr]:
    dt = _float_unary(info, "Swish")
    return [
        Instr("({p0} * {0})", (_x(0),), dt, ((alpha, dt),)),
        Instr(BUILDERS["Sigmoid"](Info((dt,), 13))[0].expr, (_t(0),), dt),
        Instr("({0} * {1})", (_x(0), _t(1)), dt),
    ]


@builder("Relu")
def _relu(info: Info) -> list[Instr]:
    dt = info.dtype(0)
    _require(dt, FLOATS + SIGNED, "Relu")
    return _one("({0} < 0 ? ({T})0 : {0})", [_x(0)], dt)  # NaN passes through


def _float_unary(info: Info, what: str) -> np.dtype:
    dt = info.dtype(0)
    _require(dt, FLOATS, what)
    return dt


@builder("LeakyRelu")
def _leaky_relu(info: Info, *, alpha: float = 0.01) -> list[Instr]:
    dt = _float_unary(info, "LeakyRelu")
    return _one("({0} < 0 ? {0} * {p0} : {0})", [_x(0)], dt, [alpha])


@builder("Elu")
def _elu(info: Info, *, alpha: float = 1.0) -> list[Instr]:
    dt = _float_unary(info, "Elu")
    return _one("({0} < 0 ? {p0} * expm1({0}) : {0})", [_x(0)], dt, [alpha])


@builder("Selu")
def _selu(info: Info, *, alpha: float = 1.67326319217681884765625, gamma: float = 1.05070102214813232421875) -> list[Instr]:
    dt = _float_unary(info, "Selu")
    return _one("({0} > 0 ? {p1} * {0} : {p1} * {p0} * expm1({0}))", [_x(0)], dt, [alpha, gamma])


@builder("Celu")
def _celu(info: Info, *, alpha: float = 1.0) -> list[Instr]:
    """max(0, x) + min(0, alpha * expm1(x / alpha)): one of the two terms is always 0."""
    dt = _float_unary(info, "Celu")
    return _one("({0} > 0 ? {0} : {p0} * expm1({0} / {p0}))", [_x(0)], dt, [alpha])


_CLAMP01 = "({0} < 0 ? ({T})0 : ({0} > 1 ? ({T})1 : {0}))"


@builder("HardSigmoid")
def _hard_sigmoid(info: Info, *, alpha: float = 0.2, beta: float = 0.5) -> list[Instr]:
    dt = _float_unary(info, "HardSigmoid")
    return [Instr("({p0} * {0} + {p1})", (_x(0),), dt, ((alpha, dt), (beta, dt))), Instr(_CLAMP01, (_t(0),), dt)]


@builder("HardSwish")
def _hard_swish(info: Info) -> list[Instr]:
    dt = _float_unary(info, "HardSwish")
    return [
        Instr("({0} * (({T})1 / ({T})6) + ({T})0.5)", (_x(0),), dt),
        Instr(_CLAMP01, (_t(0),), dt),
        Instr("({0} * {1})", (_x(0), _t(1)), dt),
    ]


@builder("ThresholdedRelu")
def _thresholded_relu(info: Info, *, alpha: float = 1.0) -> list[Instr]:
    dt = _float_unary(info, "ThresholdedRelu")
    return _one("({0} > {p0} ? {0} : ({T})0)", [_x(0)], dt, [alpha])


@builder("PRelu")
def _prelu(info: Info) -> list[Instr]:
    dt = info.dtype(0)
    _require(dt, FLOATS + (np.dtype(np.int32), np.dtype(np.int64)), "PRelu")
    if info.dtype(1) != dt:
        raise Declined("slope dtype differs from x")
    return _one("({0} < 0 ? {0} * {1} : {0})", [_x(0), _x(1)], dt)


@builder("Gelu")
def _gelu(info: Info, *, approximate: str = "none") -> list[Instr]:
    dt = _float_unary(info, "Gelu")
    if approximate == "tanh":
        k, c = literal(math.sqrt(2 / math.pi), dt), literal(0.044715, dt)
        inner = f"tanh({k} * ({{0}} + {c} * {{0}} * {{0}} * {{0}}))"
    elif approximate == "none":
        inner = f"erf({{0}} * {literal(math.sqrt(0.5), dt)})"
    else:
        raise Declined(f"Gelu approximate={approximate!r}")
    return _one(f"(({{T}})0.5 * {{0}} * (({{T}})1 + {inner}))", [_x(0)], dt)


@builder("Where")
def _where(info: Info) -> list[Instr]:
    dt = info.dtype(1)
    if info.dtype(0) != BOOL or info.dtype(2) != dt:
        raise Declined("Where needs a bool condition and equal branch dtypes")
    _require(dt, ALL, "Where")
    return _one("({0} ? {1} : {2})", [_x(0), _x(1), _x(2)], dt)


def _cast_expr(src: np.dtype, dst: np.dtype) -> str:
    if dst == BOOL:
        return "({0} != 0)"  # NaN is true, as numpy's astype(bool)
    if src in FLOATS and dst in INTS and dst.itemsize < 4:
        # C leaves out-of-range float -> small int undefined; numpy goes through int32 and wraps
        return "(int)({0})"
    if src in FLOATS and dst == np.dtype(np.uint32):
        return "(long)({0})"
    if src in FLOATS and dst == np.dtype(np.uint64):
        return "({0} < 0 ? ({T})(long)({0}) : ({T})({0}))"
    return "{0}"  # C conversion: floats truncate toward zero, like numpy's astype


_CAST_TARGETS = {onnx_type: np_dtype(onnx_type) for onnx_type in (
    onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BOOL,
    onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
    onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64,
)}


@builder("Cast")
def _cast(info: Info, *, to: Any, saturate: int = 1, round_mode: str = "up") -> list[Instr]:
    """Cast between numeric and bool types (saturate/round_mode only concern float8 targets)."""
    if isinstance(to, (str, bytes)):
        name = to.decode() if isinstance(to, bytes) else to
        to = onnx.TensorProto.DataType.Value(name.upper()) if name.upper() in onnx.TensorProto.DataType.keys() else -1  # noqa: SIM118 - a protobuf enum, not a dict
    dst = _CAST_TARGETS.get(int(to))
    if dst is None:
        raise Declined(f"Cast to ONNX type {to}")
    src = info.dtype(0)
    _require(src, ALL, "Cast")
    return _one(_cast_expr(src, dst), [_x(0)], dst)


@builder("Clip")
def _clip(info: Info, *, min: float | None = None, max: float | None = None) -> list[Instr]:  # noqa: A002
    """Clip: lower bound first, then upper, so min > max gives max; NaN passes through."""
    dt = info.dtype(0)
    _require(dt, NUMERIC, "Clip")
    out: list[Instr] = []
    value: tuple[str, int] = _x(0)
    if info.opset < 11:
        bounds: list[tuple[Any, Any]] = []
        lo_default, hi_default = (-3.4028234663852886e38, 3.4028234663852886e38) if info.opset >= 6 else (None, None)
        lo = min if min is not None else lo_default
        hi = max if max is not None else hi_default
        for bound, expr in ((lo, "({0} < {p0} ? {p0} : {0})"), (hi, "({0} > {p0} ? {p0} : {0})")):
            if bound is not None:
                bounds.append((bound, expr))
        for bound, expr in bounds:
            out.append(Instr(expr, (value,), dt, ((bound, dt),)))
            value = _t(len(out) - 1)
    else:
        for i, expr in ((1, "({0} < {1} ? {1} : {0})"), (2, "({0} > {1} ? {1} : {0})")):
            if info.present(i):
                if info.dtype(i) != dt:
                    raise Declined("bound dtype differs from x")
                out.append(Instr(expr, (value, _x(i)), dt))
                value = _t(len(out) - 1)
    if not out:
        out.append(Instr("{0}", (_x(0),), dt))
    return out


# -- node -> instructions ---------------------------------------------------------------------

_LEGACY_ATTRS = frozenset({"consumed_inputs"})


def node_instrs(op_type: str, attrs: dict[str, Any], dtypes: Sequence[np.dtype | None], opset: int) -> list[Instr]:
    """The instructions computing one node's output; raises :class:`Declined`."""
    build = BUILDERS.get(op_type)
    if build is None:
        raise Declined(f"{op_type} is not an elementwise expression")
    attrs = {k: v for k, v in attrs.items() if k not in _LEGACY_ATTRS}
    try:
        return build(Info(tuple(dtypes), opset), **attrs)
    except TypeError as exc:  # an attribute the op's builder does not know
        raise Declined(f"unsupported attribute(s) {sorted(attrs)}: {exc}") from None


def _supports(node: Any, input_types: list[Any]) -> str | None:
    for t in input_types:
        if t is not None and t.rank is not None and t.rank > MAX_RANK and not _mergeable_later(t):
            return f"rank {t.rank} input"
    dtypes = [t.dtype if t is not None else None for t in input_types]
    try:
        node_instrs(node.op_type, node.attrs, dtypes, _opset_hint(node))
    except Declined as exc:
        return str(exc)
    return None


def _mergeable_later(t: Any) -> bool:
    """Ranks above MAX_RANK are fine when dims merge at run time; decline only when static dims say no."""
    return sum(1 for d in t.shape if d != 1) <= MAX_RANK


def _opset_hint(node: Any) -> int:
    # supports() does not get the opset; the builders only need it for Clip, whose
    # attribute form (< 11) is recognisable from the node itself
    return 6 if node.op_type == "Clip" and ("min" in node.attrs or "max" in node.attrs) else 11


def _factory(op_type: str) -> Callable[..., Any]:
    def factory(ctx: Any, /, **attrs: Any) -> Callable[..., Any]:
        instrs = node_instrs(op_type, attrs, ctx.input_dtypes, ctx.opset)
        used = sorted({k for ins in instrs for kind, k in ins.operands if kind == "in"})
        remap = {k: i for i, k in enumerate(used)}
        instrs = [
            Instr(ins.expr, tuple((kind, remap[k]) if kind == "in" else (kind, k) for kind, k in ins.operands), ins.dtype, ins.params)
            for ins in instrs
        ]
        ek = ElementwiseKernel(
            ctx.provider.runtime, [ctx.input_dtypes[k] for k in used], instrs, [len(instrs) - 1], ctx.node.describe()
        )

        if used == list(range(len(used))) and len(used) == len(ctx.node.inputs):
            def run(*inputs: Any) -> Any:
                return ek(*inputs)[0]
        else:
            def run(*inputs: Any) -> Any:
                return ek(*(inputs[k] for k in used))[0]

        return run

    factory.__name__ = factory.__qualname__ = op_type.lower()
    return factory


def _register(op_type: str, versions: Sequence[int], dtypes: Any = None) -> None:
    fn = _factory(op_type)
    for since in versions:
        kernel(op_type, since=since, dtypes=dtypes, factory=True, supports=_supports)(fn)


# Explicit table: op, the opset versions whose semantics the builders implement, input-0 dtypes.
_TABLE: tuple[tuple[str, tuple[int, ...], Sequence[np.dtype]], ...] = (
    ("Add", (7, 13, 14), NUMERIC),
    ("Sub", (7, 13, 14), NUMERIC),
    ("Mul", (7, 13, 14), NUMERIC),
    ("Div", (7, 13, 14), NUMERIC),
    ("Mod", (10, 13, 28), NUMERIC),
    ("Pow", (7, 12, 13, 15), FLOATS + (np.dtype(np.int32), np.dtype(np.int64))),
    ("Max", (8, 12, 13), NUMERIC),
    ("Min", (8, 12, 13), NUMERIC),
    ("Sum", (8, 13), NUMERIC),
    ("Mean", (8, 13), FLOATS),
    ("Equal", (7, 11, 13, 19), ALL),
    ("Less", (7, 9, 13), NUMERIC),
    ("Greater", (7, 9, 13), NUMERIC),
    ("LessOrEqual", (12, 16), NUMERIC),
    ("GreaterOrEqual", (12, 16), NUMERIC),
    ("And", (7,), (BOOL,)),
    ("Or", (7,), (BOOL,)),
    ("Xor", (7,), (BOOL,)),
    ("Not", (1,), (BOOL,)),
    ("Neg", (6, 13), FLOATS + SIGNED),
    ("Abs", (6, 13), NUMERIC),
    ("Sqrt", (6, 13), FLOATS),
    ("Exp", (6, 13), FLOATS),
    ("Log", (6, 13), FLOATS),
    ("Reciprocal", (6, 13), FLOATS),
    ("Floor", (6, 13), FLOATS),
    ("Ceil", (6, 13), FLOATS),
    ("Sign", (9, 13), NUMERIC),
    ("Round", (11, 22), FLOATS),
    ("Tan", (7, 22), FLOATS),
    ("Asin", (7, 22), FLOATS),
    ("Acos", (7, 22), FLOATS),
    ("Atan", (7, 22), FLOATS),
    ("Sinh", (9, 22), FLOATS),
    ("Cosh", (9, 22), FLOATS),
    ("Asinh", (9, 22), FLOATS),
    ("Acosh", (9, 22), FLOATS),
    ("Atanh", (9, 22), FLOATS),
    ("IsNaN", (9, 13, 20), FLOATS),
    ("IsInf", (10, 20), FLOATS),
    ("BitwiseAnd", (18,), INTS),
    ("BitwiseOr", (18,), INTS),
    ("BitwiseXor", (18,), INTS),
    ("BitwiseNot", (18,), INTS),
    ("BitShift", (11, 28), UNSIGNED),
    ("Shrink", (9,), FLOATS),
    ("Swish", (24,), FLOATS),
    ("Sin", (7, 22), FLOATS),
    ("Cos", (7, 22), FLOATS),
    ("Tanh", (6, 13), FLOATS),
    ("Sigmoid", (6, 13), FLOATS),
    ("Erf", (9, 13), FLOATS),
    ("Where", (9, 16), {0: (BOOL,), 1: ALL}),
    ("Cast", (6, 9, 13, 19, 21, 23, 24, 25, 28), ALL),
    ("Clip", (6, 11, 12, 13), NUMERIC),
    ("Relu", (6, 13, 14), FLOATS + SIGNED),
    ("LeakyRelu", (6, 16), FLOATS),
    ("Elu", (6, 22), FLOATS),
    ("Selu", (6, 22), FLOATS),
    ("Celu", (12, 28), FLOATS),
    ("HardSigmoid", (6, 22), FLOATS),
    ("HardSwish", (14, 22), FLOATS),
    ("Softplus", (1, 22), FLOATS),
    ("Softsign", (1, 22), FLOATS),
    ("ThresholdedRelu", (10, 22), FLOATS),
    ("PRelu", (7, 9, 16), FLOATS + (np.dtype(np.int32), np.dtype(np.int64))),
    ("Gelu", (20,), FLOATS),
    ("Mish", (18, 22), FLOATS),
)

for _op, _versions, _dtypes in _TABLE:
    _register(_op, _versions, _dtypes)


# -- Identity and Dropout: no computation ---------------------------------------------------------


def _tensor_only(node: Any, input_types: list[Any]) -> str | None:
    t = input_types[0] if input_types else None
    if t is not None and t.kind != "tensor":
        return f"{t.kind} values stay on CPU"
    if t is not None and t.dtype is not None and t.dtype.kind in "OUSV":
        return f"dtype {t.dtype}"
    return None


@kernel("Identity", since=1, factory=True, dtypes=ALL, supports=_tensor_only)
@kernel("Identity", since=13, factory=True, dtypes=ALL, supports=_tensor_only)
@kernel("Identity", since=14, factory=True, dtypes=ALL, supports=_tensor_only)
@kernel("Identity", since=16, factory=True, dtypes=ALL, supports=_tensor_only)
@kernel("Identity", since=19, factory=True, dtypes=ALL, supports=_tensor_only)
@kernel("Identity", since=21, factory=True, dtypes=ALL, supports=_tensor_only)
@kernel("Identity", since=23, factory=True, dtypes=ALL, supports=_tensor_only)
@kernel("Identity", since=24, factory=True, dtypes=ALL, supports=_tensor_only)
@kernel("Identity", since=25, factory=True, dtypes=ALL, supports=_tensor_only)
def identity(ctx, /):
    """Identity: the input array itself."""
    return lambda x: x


def _fill_ones(ctx: Any, dtype: np.dtype) -> Callable[[Any], Any]:
    """An all-ones array of ``x``'s shape, made on the device by a one-instruction kernel."""
    ones = ElementwiseKernel(ctx.provider.runtime, [dtype], [Instr("(({T})1)", (("in", 0),), dtype)], [0], ctx.node.describe())
    return lambda x: ones(x)[0]


def _dropout_supports(node: Any, input_types: list[Any]) -> str | None:
    if len(node.inputs) > 2 and node.inputs[2]:
        return "training_mode may be true (random masks are not implemented on OpenCL)"
    return _tensor_only(node, input_types)


def _dropout(ctx: Any, mask_dtype: np.dtype | None) -> Callable[..., Any]:
    if ctx.n_outputs < 2:
        return lambda x, *rest: (x,)
    dtype = mask_dtype or ctx.input_dtypes[0]
    if dtype is None:
        raise InvalidArgument(f"{ctx.node.describe()}: the input dtype is unknown")
    ones = _fill_ones(ctx, np.dtype(dtype))
    return lambda x, *rest: (x, ones(x))


@kernel("Dropout", since=7, factory=True, multi_output=True, dtypes=FLOATS, supports=_dropout_supports)
def dropout_7(ctx, /, *, ratio=0.5):
    """Dropout-7: identity at inference; the mask has x's type, all ones."""
    return _dropout(ctx, None)


@kernel("Dropout", since=10, factory=True, multi_output=True, dtypes=FLOATS, supports=_dropout_supports)
def dropout_10(ctx, /, *, ratio=0.5):
    """Dropout-10: identity at inference; a bool mask of ones."""
    return _dropout(ctx, BOOL)


@kernel("Dropout", since=12, factory=True, multi_output=True, dtypes=FLOATS, supports=_dropout_supports)
@kernel("Dropout", since=13, factory=True, multi_output=True, dtypes=FLOATS, supports=_dropout_supports)
@kernel("Dropout", since=22, factory=True, multi_output=True, dtypes=FLOATS, supports=_dropout_supports)
def dropout(ctx, /, *, seed=None):
    """Dropout-12+ without training_mode: identity; a bool mask of ones."""
    return _dropout(ctx, BOOL)


__all__ = ["BUILDERS", "Declined", "Info", "node_instrs"]
