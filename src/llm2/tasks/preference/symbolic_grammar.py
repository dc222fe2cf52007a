"""Loss expressions as small trees: the building blocks of the symbolic proposer, their code and their formula.

Every tree is a per-pair loss over "higher is better" margins: ``x = β·ρ``, ``xc = β·r_c`` and ``xr = −β·r_r``.
A tree renders to code in the preference contract (numerically stable: F.logsigmoid, clamped exponentials) and to
a one-line formula in call syntax, e.g. ``gate(0.05, logistic(x, 1.0), hinge(x, 1.0, 1.0))``. The formula is
written into the code as a comment, so a tree can be read back from code the proposer wrote, even after a resume
(both texts: ``symbolic_text.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar, Union

VARIABLES: dict[str, str] = {
    "x": "beta * (r_chosen - r_rejected)",
    "xc": "beta * r_chosen",
    "xr": "-beta * r_rejected",
}
VARIABLE_MEANING = {"x": "β·ρ", "xc": "β·r_c", "xr": "−β·r_r"}
EXP_CLAMP = 20.0  # exp arguments are clamped here so the loss stays finite
FORMULA_PREFIX = "# formula: "


def fmt(value: float) -> str:
    """A constant as it appears in code and formulas: 4 significant digits, always a float literal."""
    text = f"{value:.4g}"
    return text if any(c in text for c in ".en") else text + ".0"


def rounded(value: float) -> float:
    """New constants get 3 significant digits, so names, formulas and code stay readable."""
    return float(f"{value:.3g}")


def _scaled(var: str, scale: float) -> str:
    return var if scale == 1.0 else f"{fmt(scale)} * {var}"


# --- leaves: one classic loss shape applied to one margin ------------------------------------------------------

@dataclass(frozen=True)
class _Leaf:
    var: str = "x"  # the margin it applies to (VARIABLES)


@dataclass(frozen=True)
class _Scaled(_Leaf):
    """A shape applied to k·v, written from its templates in SCALED_TEXTS."""

    scale: float = 1.0

    def expression(self, writer: "_Writer") -> str:
        return SCALED_TEXTS[type(self)][0].format(v=_scaled(self.var, self.scale), clamp=fmt(EXP_CLAMP))

    def pretty(self) -> str:
        return SCALED_TEXTS[type(self)][1].format(v=_pretty_scaled(self.var, self.scale),
                                                   neg=_pretty_negated(self.var, self.scale))


@dataclass(frozen=True)
class Logistic(_Scaled):
    """−log σ(k·v): DPO's loss."""


@dataclass(frozen=True)
class Exponential(_Scaled):
    """exp(−k·v), the argument clamped: grows fast on wrongly ranked pairs."""


@dataclass(frozen=True)
class Hinge(_Leaf):
    """max(0, m − k·v): SLiC's loss; no push once the margin is met."""

    margin: float = 1.0
    scale: float = 1.0

    def expression(self, writer: "_Writer") -> str:
        return f"torch.relu({fmt(self.margin)} - {_scaled(self.var, self.scale)})"

    def pretty(self) -> str:
        return f"max(0, {fmt(self.margin)} − {_pretty_scaled(self.var, self.scale)})"


@dataclass(frozen=True)
class Squared(_Leaf):
    """w·(v − t)², or ((v − t)/β)² when per_beta (IPO's form)."""

    target: float = 0.5
    weight: float = 1.0
    per_beta: bool = False

    def expression(self, writer: "_Writer") -> str:
        inner = f"({self.var} - {fmt(self.target)})"
        if self.per_beta:
            inner = f"({inner} / beta)"
        return f"{fmt(self.weight)} * {inner} ** 2" if self.weight != 1.0 else f"{inner} ** 2"

    def pretty(self) -> str:
        inner = f"({VARIABLE_MEANING[self.var]} − {fmt(self.target)})"
        body = f"({inner}/β)²" if self.per_beta else f"{inner}²"
        return body if self.weight == 1.0 else f"{fmt(self.weight)}·{body}"


@dataclass(frozen=True)
class Saturating(_Scaled):
    """σ(−k·v) = 1 − σ(k·v): a bounded loss that gives up on hopeless (likely mislabelled) pairs."""


# code of the scaled margin {v} and pretty form of it, {v}, or of its negation, {neg}
SCALED_TEXTS: dict[type, tuple[str, str]] = {
    Logistic: ("-F.logsigmoid({v})", "−log σ({v})"),
    Exponential: ("torch.exp(torch.clamp(-{v}, max={clamp}))", "exp({neg})"),
    Saturating: ("torch.sigmoid(-{v})", "σ({neg})"),
}


# --- composites ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Texts:
    """How a composite is written. In ``code`` each child field stands for the name its code is bound to, each
    number field for its literal, ``rest`` for 1 − weight, and each of ``bound``'s (name, template) for an
    intermediate bound after the children; in ``shown`` each child stands for its pretty form (bracketed unless a
    leaf)."""

    code: str
    shown: str
    bound: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Composite:
    """A loss made of sub-trees, written from its class's ``texts``."""

    texts: ClassVar[Texts]

    def expression(self, writer: "_Writer") -> str:
        values = self._numbers() | {name: writer.bind_child(child) for name, child in self._children()}
        for stem, template in self.texts.bound:
            values[stem] = writer.bind(stem, template.format(**values))
        return self.texts.code.format(**values)

    def pretty(self) -> str:
        children = {name: _bracketed(child) for name, child in self._children()}
        return self.texts.shown.format(**self._numbers(), **children)

    def _children(self) -> list[tuple[str, "Node"]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if isinstance(getattr(self, f.name), ALL_KINDS)]

    def _numbers(self) -> dict[str, str]:
        numbers = {f.name: fmt(getattr(self, f.name)) for f in fields(self) if isinstance(getattr(self, f.name), float)}
        if "weight" in numbers:
            numbers["rest"] = fmt(1.0 - getattr(self, "weight"))
        return numbers


@dataclass(frozen=True)
class _Weighted(_Composite):
    weight: float
    a: "Node"
    b: "Node"


@dataclass(frozen=True)
class Blend(_Weighted):
    """w·a + (1 − w)·b."""

    texts = Texts("{weight} * {a} + {rest} * {b}", "{weight}·{a} + {rest}·{b}")


@dataclass(frozen=True)
class Sum(_Weighted):
    """a + w·b: a main loss plus a weighted extra term."""

    @property
    def texts(self) -> Texts:  # type: ignore[override]  # the weight is left out when it is 1
        return Texts("{a} + {b}", "{a} + {b}") if self.weight == 1.0 else \
            Texts("{a} + {weight} * {b}", "{a} + {weight}·{b}")


@dataclass(frozen=True)
class SignWeighted(_Composite):
    """inner · (neg if ρ < 0 else pos): PADLL's sign-dependent weighting."""

    neg: float
    pos: float
    inner: "Node"
    texts = Texts("{sign_weight} * {inner}", "({neg} if ρ < 0 else {pos})·{inner}",
                  (("sign_weight", "torch.where(x < 0, torch.full_like(x, {neg}), torch.full_like(x, {pos}))"),))


@dataclass(frozen=True)
class Gate(_Composite):
    """(1 − g)·a + g·b with g = σ(x/τ): a on wrongly ranked pairs, b on well ranked ones (DiscoPOP's form)."""

    tau: float
    a: "Node"
    b: "Node"
    texts = Texts("(1.0 - {gate}) * {a} + {gate} * {b}", "(1 − g)·{a} + g·{b}, g = σ(x/{tau})",
                  (("gate", "torch.sigmoid(x / {tau})"),))


Node = Union[Logistic, Exponential, Hinge, Squared, Saturating, Blend, Gate, SignWeighted, Sum]
LEAVES = (Logistic, Exponential, Hinge, Squared, Saturating)
COMPOSITES = (Blend, Gate, SignWeighted, Sum)
ALL_KINDS = LEAVES + COMPOSITES
KINDS: dict[str, type] = {cls.__name__.lower(): cls for cls in ALL_KINDS}

# The range of each tunable constant (field name -> (low, high)); constants are clipped into it.
RANGES: dict[str, tuple[float, float]] = {
    "scale": (0.1, 10.0), "margin": (0.0, 5.0), "target": (0.0, 3.0), "weight": (0.05, 0.95),
    "tau": (0.01, 2.0), "neg": (0.1, 2.0), "pos": (0.1, 2.0),
}
SUM_WEIGHT_RANGE = (0.02, 1.0)
SQUARED_WEIGHT_RANGE = (0.05, 2.0)


def constant_range(node: Node, field_name: str) -> tuple[float, float]:
    if field_name == "weight" and isinstance(node, Sum):
        return SUM_WEIGHT_RANGE
    if field_name == "weight" and isinstance(node, Squared):
        return SQUARED_WEIGHT_RANGE
    return RANGES[field_name]


def kind_of(node: Node) -> str:
    return type(node).__name__.lower()


def children(node: Node) -> list[Node]:
    return [getattr(node, f.name) for f in fields(node) if isinstance(getattr(node, f.name), ALL_KINDS)]



def leaves(node: Node) -> list[Node]:
    if isinstance(node, LEAVES):
        return [node]
    return [leaf for child in children(node) for leaf in leaves(child)]


def subtrees(node: Node, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Node]]:
    """Every (path, subtree), the root first; a path is the field names leading to the subtree."""
    found = [(path, node)]
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ALL_KINDS):
            found += subtrees(value, path + (f.name,))
    return found


def replace_at(node: Node, path: tuple[str, ...], new: Node) -> Node:
    if not path:
        return new
    head, rest = path[0], path[1:]
    return replace(node, **{head: replace_at(getattr(node, head), rest, new)})


def constants(node: Node) -> list[tuple[tuple[str, ...], str, float]]:
    """Every tunable constant as (path to its node, field name, value)."""
    found = []
    for path, sub in subtrees(node):
        for f in fields(sub):
            value = getattr(sub, f.name)
            if isinstance(value, float) and not isinstance(value, bool):
                found.append((path, f.name, value))
    return found


def node_at(node: Node, path: tuple[str, ...]) -> Node:
    for name in path:
        node = getattr(node, name)
    return node


def size(node: Node) -> int:
    return len(subtrees(node))


def canonical(node: Node) -> Node:
    """Fold redundant structure, so equivalent trees are not proposed twice: nested sign weights multiply,
    a blend or gate of two equal parts is that part, a term added twice is added once with the summed weight."""
    if isinstance(node, LEAVES):
        return node
    node = replace(node, **{f.name: canonical(getattr(node, f.name)) for f in fields(node)
                            if isinstance(getattr(node, f.name), ALL_KINDS)})
    if isinstance(node, SignWeighted) and isinstance(node.inner, SignWeighted):
        low, high = RANGES["neg"]
        neg = min(max(rounded(node.neg * node.inner.neg), low), high)
        pos = min(max(rounded(node.pos * node.inner.pos), low), high)
        return SignWeighted(neg, pos, node.inner.inner)
    if isinstance(node, (Blend, Gate)) and node.a == node.b:
        return node.a
    if isinstance(node, Sum) and isinstance(node.a, Sum) and node.a.b == node.b:  # a + w1·t + w2·t
        return Sum(min(rounded(node.weight + node.a.weight), SUM_WEIGHT_RANGE[1]), node.a.a, node.b)
    return node


def _pretty_scaled(var: str, scale: float) -> str:
    meaning = VARIABLE_MEANING[var]
    return meaning if scale == 1.0 else f"{fmt(scale)}·{meaning}"


def _pretty_negated(var: str, scale: float) -> str:
    """−k·v, written without a double minus for xr = −β·r_r."""
    if var == "xr":
        return "β·r_r" if scale == 1.0 else f"{fmt(scale)}·β·r_r"
    return "−" + _pretty_scaled(var, scale)


def _bracketed(node: "Node") -> str:
    return node.pretty() if isinstance(node, LEAVES) else f"[{node.pretty()}]"


# --- the known losses as trees (for baselines and foreign code whose name is in the catalog) --------------------

KNOWN_TREES: dict[str, Node] = {
    "dpo": Logistic("x", 1.0),
    "sigmoid": Logistic("x", 1.0),
    "hinge": Hinge("x", 1.0, 1.0),
    "slic": Hinge("x", 1.0, 1.0),
    "ipo": Squared("x", 0.5, 1.0, True),
    "bco_pair": Sum(1.0, Logistic("xc", 1.0), Logistic("xr", 1.0)),
    "apo_zero": Sum(1.0, Saturating("xc", 1.0), Saturating("xr", 1.0)),
    # kto_pair without its batch reference points: two saturating sigmoid losses on r_c and −r_r.
    "kto_pair": Sum(1.0, Saturating("xc", 1.0), Saturating("xr", 1.0)),
    "discopop": Gate(0.05, Logistic("x", 1.0), Exponential("x", 1.0)),
    "lrml": Gate(0.05, Logistic("x", 1.0), Exponential("x", 1.0)),
    "cell": Blend(0.5, Logistic("x", 1.0), Exponential("x", 1.0)),
    "padll": SignWeighted(0.45, 0.9, Logistic("x", 1.0)),
}
