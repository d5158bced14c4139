"""ONNX -> model file, step 3: recognize the subgraphs that exporters emit for
one function (GELU, SiLU, Mish, layer normalization, ...) and rewrite them as
one of the runtime's layers where they compute it exactly. An elementwise
expression is compared symbolically (a polynomial in the functions of the
input, constants to 2e-6 relative), not sampled. Used by
:mod:`emulators.onnx_import`.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from emulators.formats import UnsupportedModelError
from emulators.onnx_interpreter import (
    _Dyn,
    _ELEMENTWISE_BINARY,
    _ELEMENTWISE_UNARY,
    _Node,
    _Refusal,
    _close,
    _f32,
    _new_node,
    _scalar,
)


# --------------------------------------------------------------------------
# Recognition: elementwise expressions as polynomials in functions of x


class _NoMatch(Exception):
    pass


# A polynomial is a tuple of terms (coeff, monomial), a monomial a sorted tuple
# of (atom, power), an atom ("x",) or (function, params, argument polynomials).
_X_ATOM = ("x",)
_MAX_TERMS = 48


def _poly_const(c: float) -> tuple:
    return ((float(c), ()),) if c != 0 else ()


def _poly_atom(atom: tuple) -> tuple:
    return ((1.0, ((atom, 1),)),)


def _combine(terms: Iterable[tuple[float, tuple]]) -> tuple:
    sums: dict[tuple, float] = {}
    for coeff, mono in terms:
        sums[mono] = sums.get(mono, 0.0) + coeff
    out = tuple(sorted(((c, m) for m, c in sums.items() if c != 0.0), key=lambda t: repr(t[1])))
    if len(out) > _MAX_TERMS:
        raise _NoMatch()
    return out


def _poly_add(*polys: tuple) -> tuple:
    return _combine(term for p in polys for term in p)


def _poly_scale(p: tuple, c: float) -> tuple:
    return _combine((coeff * c, mono) for coeff, mono in p)


def _mono_mul(a: tuple, b: tuple) -> tuple:
    powers: dict[tuple, int] = {}
    for atom, k in a + b:
        powers[atom] = powers.get(atom, 0) + k
    return tuple(sorted(powers.items(), key=lambda t: repr(t[0])))


def _poly_mul(p: tuple, q: tuple) -> tuple:
    if len(p) * len(q) > _MAX_TERMS * 4:
        raise _NoMatch()
    return _combine((a * b, _mono_mul(m, n)) for a, m in p for b, n in q)


def _poly_func(name: str, params: tuple, *args: tuple) -> tuple:
    # a function of a constant is a constant (folded before), so args hold x
    return _poly_atom((name, params, tuple(args)))


def _sig_atom(atom: tuple) -> tuple:
    if atom == _X_ATOM:
        return atom
    return (atom[0], len(atom[1]), tuple(_signature(arg) for arg in atom[2]))


def _sig_mono(mono: tuple) -> tuple:
    return tuple(sorted(((_sig_atom(a), k) for a, k in mono), key=repr))


def _signature(p: tuple) -> tuple:
    """The shape of a polynomial, without its coefficients."""
    return tuple(sorted((_sig_mono(m) for _, m in p), key=repr))


def _params_approx(a: tuple, b: tuple) -> bool:
    if len(a) != len(b):
        return False
    for u, v in zip(a, b):
        if isinstance(u, float) and isinstance(v, float):
            if not _close(u, v):
                return False
        elif u != v:
            return False
    return True


def _atom_approx(a: tuple, b: tuple) -> bool:
    if a == _X_ATOM or b == _X_ATOM:
        return a == b
    return (a[0] == b[0] and _params_approx(a[1], b[1]) and len(a[2]) == len(b[2])
            and all(_poly_approx(p, q) for p, q in zip(a[2], b[2])))


def _mono_approx(m: tuple, n: tuple) -> bool:
    if len(m) != len(n):
        return False
    m = sorted(m, key=lambda t: repr(_sig_atom(t[0])))
    n = sorted(n, key=lambda t: repr(_sig_atom(t[0])))
    return all(k == j and _atom_approx(a, b) for (a, k), (b, j) in zip(m, n))


def _poly_approx(p: tuple, q: tuple) -> bool:
    """Polynomials equal up to their coefficients' float32 rounding (terms matched greedily)."""
    if len(p) != len(q):
        return False
    remaining = list(q)
    for coeff, mono in p:
        for i, (c2, m2) in enumerate(remaining):
            if _close(coeff, c2) and _mono_approx(mono, m2):
                del remaining[i]
                break
        else:
            return False
    return True


_FUNCTION_ATOMS = {
    "Erf": "erf", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softplus": "softplus", "Abs": "abs", "Log": "log",
    "Exp": "exp", "Relu": "relu", "Softsign": "softsign", "Sqrt": "sqrt", "Reciprocal": "recip", "Mish": "mish",
    "HardSwish": "hardswish",
}


class _Canon:
    """The polynomial of an expression in the variable ``x`` (a _Dyn)."""

    def __init__(self, x: _Dyn, limit: int = 40):
        self.x = x
        self.memo: dict[int, tuple] = {}
        self.budget = limit

    def __call__(self, value: Any) -> tuple:
        if value is self.x:
            return _poly_atom(_X_ATOM)
        if isinstance(value, np.ndarray):
            s = _scalar(value)
            if s is None or not math.isfinite(s):
                raise _NoMatch()
            return _poly_const(s)
        if not isinstance(value, _Dyn) or value.node is None:
            raise _NoMatch()
        key = id(value)
        if key not in self.memo:
            self.budget -= 1
            if self.budget < 0:
                raise _NoMatch()
            self.memo[key] = self.node(value.node)
        return self.memo[key]

    def node(self, node: _Node) -> tuple:
        op, ins, attrs = node.op, node.inputs, node.attrs
        if op in ("Add", "Sum"):
            return _poly_add(*(self(v) for v in ins))
        if op == "Sub":
            return _poly_add(self(ins[0]), _poly_scale(self(ins[1]), -1.0))
        if op == "Neg":
            return _poly_scale(self(ins[0]), -1.0)
        if op == "Mul":
            return _poly_mul(self(ins[0]), self(ins[1]))
        if op == "Div":
            denominator = ins[1]
            if isinstance(denominator, np.ndarray):
                s = _scalar(denominator)
                if not s:
                    raise _NoMatch()
                return _poly_scale(self(ins[0]), 1.0 / s)
            return _poly_mul(self(ins[0]), _poly_func("recip", (), self(denominator)))
        if op == "Pow":
            exponent = _scalar(ins[1]) if isinstance(ins[1], np.ndarray) else None
            if exponent is None:
                raise _NoMatch()
            base = self(ins[0])
            if exponent in (1.0, 2.0, 3.0, 4.0):
                out = base
                for _ in range(int(exponent) - 1):
                    out = _poly_mul(out, base)
                return out
            if exponent == 0.5:
                return _poly_func("sqrt", (), base)
            if exponent == -1.0:
                return _poly_func("recip", (), base)
            return _poly_func("pow", (exponent,), base)
        if op in _FUNCTION_ATOMS:
            return _poly_func(_FUNCTION_ATOMS[op], (), self(ins[0]))
        if op == "Clip":
            return _poly_func("clip", (float(attrs["min"]), float(attrs["max"])), self(ins[0]))
        if op == "HardSigmoid":
            alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
            # max(0, min(1, alpha x + beta)) = clip(alpha x + beta, 0, 1)
            return _poly_func("clip", (0.0, 1.0), _poly_add(_poly_scale(self(ins[0]), alpha), _poly_const(beta)))
        if op in ("Max", "Min") and len(ins) == 2 and isinstance(ins[1], np.ndarray):
            s = _scalar(ins[1])
            if s is None:
                raise _NoMatch()
            bounds = (s, math.inf) if op == "Max" else (-math.inf, s)
            return _poly_func("clip", bounds, self(ins[0]))
        if op in ("Greater", "Less"):
            a, b = self(ins[0]), self(ins[1])
            difference = _poly_add(a, _poly_scale(b, -1.0)) if op == "Greater" else _poly_add(b, _poly_scale(a, -1.0))
            return _poly_func("positive", (), difference)  # 1 where the difference is > 0, else 0
        if op == "Cast":
            return self(ins[0])
        if op == "Where":
            condition = self(ins[0])
            a, b = self(ins[1]), self(ins[2])
            # where(c, a, b) = b + c (a - b) for c in {0, 1}
            return _poly_add(b, _poly_mul(condition, _poly_add(a, _poly_scale(b, -1.0))))
        if op == "Act":
            return _poly_func("act", (attrs["activation"], attrs.get("alpha")), self(ins[0]))
        raise _NoMatch()


def _x() -> tuple:
    return _poly_atom(_X_ATOM)


def _t(name: str, *args: tuple, params: tuple = ()) -> tuple:
    return _poly_func(name, params, *args)


def _lin(a: float, b: float = 0.0) -> tuple:
    return _poly_add(_poly_scale(_x(), a), _poly_const(b))


def _templates() -> list[tuple[str, tuple]]:
    x = _x()
    half_x = _poly_scale(x, 0.5)
    cube = _poly_mul(_poly_mul(x, x), x)
    k = math.sqrt(2.0 / math.pi)
    out = [
        ("gelu", _poly_add(half_x, _poly_mul(half_x, _t("erf", _poly_scale(x, 1 / math.sqrt(2.0)))))),
        ("gelu_tanh", _poly_add(half_x, _poly_mul(half_x, _t("tanh", _poly_add(_poly_scale(x, k),
                                                                               _poly_scale(cube, k * 0.044715)))))),
        ("silu", _poly_mul(x, _t("sigmoid", x))),
        ("mish", _poly_mul(x, _t("tanh", _t("softplus", x)))),
        ("mish", _poly_mul(x, _t("tanh", _t("log", _poly_add(_poly_const(1.0), _t("exp", x)))))),
        ("hard_silu", _poly_mul(x, _t("clip", _lin(1 / 6, 0.5), params=(0.0, 1.0)))),
        ("hard_silu", _poly_scale(_poly_mul(x, _t("clip", _lin(1.0, 3.0), params=(0.0, 6.0))), 1 / 6)),
        ("hard_silu", _poly_scale(_poly_mul(x, _t("clip", _t("clip", _lin(1.0, 3.0), params=(0.0, math.inf)),
                                                  params=(-math.inf, 6.0))), 1 / 6)),
        ("hard_silu", _t("hardswish", x)),
        ("hard_sigmoid", _poly_scale(_t("clip", _lin(1.0, 3.0), params=(0.0, 6.0)), 1 / 6)),
        ("hard_sigmoid", _t("clip", _lin(1 / 6, 0.5), params=(0.0, 1.0))),
        ("softsign", _poly_mul(x, _t("recip", _poly_add(_poly_const(1.0), _t("abs", x))))),
        ("log_sigmoid", _t("log", _t("sigmoid", x))),
        ("log_sigmoid", _poly_scale(_t("softplus", _poly_scale(x, -1.0)), -1.0)),
        ("tanh_shrink", _poly_add(x, _poly_scale(_t("tanh", x), -1.0))),
        ("softplus", _t("log", _poly_add(_poly_const(1.0), _t("exp", x)))),
        ("gaussian", _t("exp", _poly_scale(_poly_mul(x, x), -1.0))),
        ("step", _t("positive", x)),
        ("relu6", _t("clip", x, params=(0.0, 6.0))),
        ("hard_tanh", _t("clip", x, params=(-1.0, 1.0))),
        ("relu", _t("clip", x, params=(0.0, math.inf))),
    ]
    return out


_TEMPLATES: list[tuple[str, tuple]] | None = None


def _softplus_threshold(p: tuple) -> tuple[float, float] | None:
    """PyTorch's Softplus(beta, threshold) exported as where(beta x > threshold,
    x, softplus(beta x) / beta): (beta, threshold) when `p` is that, else None."""
    positives = [atom for _, mono in p for atom, _ in mono if atom[0] == "positive"]
    if not positives:
        return None
    argument = positives[0][2][0]
    linear = {m: c for c, m in argument}
    x_mono = ((_X_ATOM, 1),)
    if set(linear) - {x_mono, ()} or x_mono not in linear:
        return None
    beta = linear[x_mono]
    threshold = -linear.get((), 0.0)
    if not beta > 0:
        return None
    condition = _poly_atom(positives[0])
    soft = _poly_scale(_t("softplus", _poly_scale(_x(), beta)), 1.0 / beta)
    template = _poly_add(soft, _poly_mul(condition, _poly_add(_x(), _poly_scale(soft, -1.0))))
    if not _poly_approx(p, template):
        return None
    return beta, threshold


def _squareplus(p: tuple) -> float | None:
    """(x + sqrt(x^2 + b)) / 2: b, else None."""
    roots = [atom for _, mono in p for atom, _ in mono if atom[0] == "sqrt"]
    if not roots:
        return None
    inner = {m: c for c, m in roots[0][2][0]}
    b = inner.get((), 0.0)
    x = _x()
    template = _poly_scale(_poly_add(x, _t("sqrt", _poly_add(_poly_mul(x, x), _poly_const(b)))), 0.5)
    return b if b > 0 and _poly_approx(p, template) else None


def _keras_relu(p: tuple) -> dict[str, float] | None:
    """Keras's ReLU layer as fkb's exporter writes it: ``p = where(x >
    threshold, x, 0)``, ``min(p, max_value)``, ``- negative_slope *
    relu(threshold - x)``: the layer's attributes, else None."""
    atoms = [atom for _, mono in p for atom, _ in mono]
    nested = [a for atom in atoms if atom[0] == "clip" for a in (atom,) + tuple(
        inner for _, mono in atom[2][0] for inner, _ in mono)]
    positives = [atom for atom in atoms + nested if atom[0] == "positive"]
    if not positives:
        return None
    linear = {m: c for c, m in positives[0][2][0]}
    x_mono = ((_X_ATOM, 1),)
    if set(linear) - {x_mono, ()} or linear.get(x_mono) != 1.0:
        return None
    threshold = -linear.get((), 0.0)
    x = _x()
    gate = _poly_mul(_poly_atom(positives[0]), x)
    clips = [atom for atom in atoms if atom[0] == "clip" and atom[1][0] == -math.inf]
    max_value = clips[0][1][1] if clips else None
    if max_value is not None:
        gate = _t("clip", gate, params=(-math.inf, max_value))
    relus = [(c, atom) for c, mono in p for atom, _ in mono if atom[0] == "relu"]
    slope = -relus[0][0] if relus else 0.0
    template = gate
    if relus:
        template = _poly_add(gate, _poly_scale(_t("relu", _lin(-1.0, threshold)), -slope))
    if not _poly_approx(p, template) or slope < 0 or (max_value is not None and max_value < 0):
        return None
    attributes = {"negative_slope": _f32(slope), "threshold": _f32(threshold)}
    if max_value is not None:
        attributes = {"max_value": _f32(max_value), **attributes}
    return attributes


# --------------------------------------------------------------------------
# Rewriting the graph with what was recognized


def _live_nodes(output: _Dyn) -> list[_Node]:
    """The nodes the output depends on, each after its inputs."""
    order: list[_Node] = []
    seen: set[int] = set()
    stack: list[tuple[_Node, bool]] = [(output.node, False)] if output.node is not None else []
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for value in reversed(node.inputs):
            if isinstance(value, _Dyn) and value.node is not None and id(value.node) not in seen:
                stack.append((value.node, False))
    return order


def _region_values(root: _Node, limit: int = 24) -> list[_Dyn]:
    """Tensors feeding `root` through elementwise nodes, nearest first."""
    seen: set[int] = set()
    order: list[_Dyn] = []
    queue = [v for v in root.inputs if isinstance(v, _Dyn)]
    while queue and len(order) < limit:
        value = queue.pop(0)
        if id(value) in seen:
            continue
        seen.add(id(value))
        order.append(value)
        node = value.node
        if node is not None and (node.op in _ELEMENTWISE_UNARY or node.op in _ELEMENTWISE_BINARY):
            queue.extend(v for v in node.inputs if isinstance(v, _Dyn))
    return order


def _recognize_activation(root: _Node) -> bool:
    """Rewrite `root` into an activation of a tensor feeding it, if its
    expression is one (exactly, up to the float32 rounding of constants)."""
    global _TEMPLATES
    if root.op not in ("Mul", "Add", "Sub", "Div", "Log", "Where", "Neg", "Exp", "Cast", "Clip", "Max", "Min"):
        return False
    if _TEMPLATES is None:
        _TEMPLATES = _templates()
    for x in _region_values(root):
        try:
            p = _Canon(x)(root.out)
        except (_NoMatch, RecursionError):
            continue
        if not any(atom == _X_ATOM for _, mono in p for atom, _ in mono) and not p:
            continue
        for name, template in _TEMPLATES:
            if _signature(p) == _signature(template) and _poly_approx(p, template):
                _become_activation(root, x, name)
                return True
        found = _softplus_threshold(p)
        if found is not None:
            beta, threshold = found
            # where the threshold switches to x, softplus(beta x)/beta - x = log1p(exp(-beta x))/beta is below
            # float32 round-off of x only if the threshold is large enough
            if threshold * 2.0 ** -24 < math.log1p(math.exp(-min(threshold, 700.0))) or threshold < 0:
                raise _Refusal(f"Softplus(beta={beta:g}, threshold={threshold:g}): the threshold is too small to "
                               "be float32 round-off; the runtime's softplus has none")
            _become_scaled_activation(root, x, "softplus", beta)
            return True
        relu = _keras_relu(p)
        if relu is not None:
            root.op, root.inputs, root.attrs = "KerasRelu", [x], relu
            return True
        b = _squareplus(p)
        if b is not None:
            _become_activation(root, x, "squareplus", alpha=_f32(b))
            return True
    return False


def _become_activation(root: _Node, x: _Dyn, name: str, alpha: float | None = None) -> None:
    root.op, root.inputs = "Act", [x]
    root.attrs = {"activation": name} | ({"alpha": alpha} if alpha is not None else {})


def _become_scaled_activation(root: _Node, x: _Dyn, name: str, beta: float) -> None:
    if beta == 1.0:
        _become_activation(root, x, name)
        return
    scaled = _new_node("Mul", [x, np.array(beta, dtype=np.float32)], {}, root.name + "/beta", x.shape)
    act = _new_node("Act", [scaled.out], {"activation": name}, root.name + "/act", x.shape)
    root.op, root.inputs, root.attrs = "Div", [act.out, np.array(beta, dtype=np.float32)], {}


def _recognize_layer_norm(root: _Node) -> bool:
    """(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) [* gamma] [+ beta]
    as exporters decompose LayerNorm (opsets before 17)."""

    def producer(value: Any, *ops: str) -> _Node | None:
        if isinstance(value, _Dyn) and value.node is not None and value.node.op in ops:
            return value.node
        return None

    def split(node: _Node) -> tuple[Any, Any] | None:
        a, b = node.inputs[:2]
        if isinstance(a, np.ndarray) and isinstance(b, _Dyn):
            a, b = b, a
        if isinstance(a, _Dyn) and isinstance(b, np.ndarray):
            return a, b
        return None

    beta = gamma = None
    value = root.out
    node = root
    if node.op == "Add" and (parts := split(node)) is not None:
        value, beta = parts
        node = producer(value, "Mul", "Div")
    if node is not None and node.op == "Mul" and (parts := split(node)) is not None:
        value, gamma = parts
        node = producer(value, "Div", "Mul")
    if node is None:
        return False
    # normalized = centered / sqrt(variance + eps)  or  centered * reciprocal(sqrt(...))
    if node.op == "Div":
        centered, denominator = node.inputs
        root_node = producer(denominator, "Sqrt")
    elif node.op == "Mul":
        centered, other = node.inputs
        recip = producer(other, "Reciprocal") or producer(centered, "Reciprocal")
        if recip is None:
            return False
        if recip is producer(centered, "Reciprocal"):
            centered, other = other, centered
        root_node = producer(recip.inputs[0], "Sqrt")
    else:
        return False
    sub = producer(centered, "Sub")
    if root_node is None or sub is None:
        return False
    x, mean = sub.inputs
    mean_node = producer(mean, "ReduceMean")
    if not isinstance(x, _Dyn) or mean_node is None or mean_node.inputs[0] is not x:
        return False
    add = producer(root_node.inputs[0], "Add")
    if add is None or (parts := split(add)) is None:
        return False
    variance, eps = parts
    epsilon = _scalar(eps)
    var_node = producer(variance, "ReduceMean")
    if epsilon is None or var_node is None:
        return False
    square = producer(var_node.inputs[0], "Pow", "Mul")
    if square is None:
        return False
    if square.op == "Pow":
        if square.inputs[0] is not centered or _scalar(square.inputs[1]) != 2.0:
            return False
    elif not (square.inputs[0] is centered and square.inputs[1] is centered):
        return False
    n = x.size
    root.op, root.inputs = "LayerNorm", [x]
    root.attrs = {
        "gamma": None if gamma is None else np.broadcast_to(np.asarray(gamma, np.float32), (n,)).copy(),
        "beta": None if beta is None else np.broadcast_to(np.asarray(beta, np.float32), (n,)).copy(),
        "epsilon": _f32(epsilon),
    }
    return True


def _recognize(output: _Dyn, source: str) -> None:
    """Recognize patterns from the output backwards (the largest first)."""
    stack = [output.node] if output.node is not None else []
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        try:
            if node.op in ("Add", "Mul", "Div"):
                _recognize_layer_norm(node)
            if node.op != "LayerNorm":
                _recognize_activation(node)
        except _Refusal as exc:
            raise UnsupportedModelError(f"{source}: node '{node.name}' ({node.op}): {exc}") from None
        for value in node.inputs:
            if isinstance(value, _Dyn) and value.node is not None:
                stack.append(value.node)
