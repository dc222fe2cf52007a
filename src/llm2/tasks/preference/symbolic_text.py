"""A loss tree as text: the one-line formula (and back, without eval) and the loss function in the preference
contract, whose first line is the formula as a comment so the tree can be read back from code (even after a resume).
"""

from __future__ import annotations

import ast
import math
from dataclasses import fields

from llm2.tasks.preference.symbolic_grammar import (ALL_KINDS, FORMULA_PREFIX, KINDS, LEAVES, VARIABLES, Node, fmt,
                                                    kind_of, leaves)


# --- formula: the tree as one line of call syntax, and back ----------------------------------------------------

def formula(node: Node) -> str:
    parts = []
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ALL_KINDS):
            parts.append(formula(value))
        elif isinstance(value, bool):
            parts.append(str(value))
        elif isinstance(value, float):
            parts.append(fmt(value))
        else:
            parts.append(str(value))
    return f"{kind_of(node)}({', '.join(parts)})"


def parse_formula(text: str) -> Node | None:
    """The tree a formula describes, or None when it is not one (no eval: only calls, names and numbers)."""
    try:
        return _build(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError, TypeError, KeyError, RecursionError):
        return None


def _build(expr: ast.expr) -> Node:
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and not expr.keywords):
        raise ValueError("not a call")
    cls = KINDS[expr.func.id]
    declared = fields(cls)
    if len(expr.args) != len(declared):
        raise ValueError("wrong arity")
    values = []
    for f, arg in zip(declared, expr.args):
        if isinstance(arg, ast.Call):
            values.append(_build(arg))
        elif isinstance(arg, ast.Name) and f.name == "var" and arg.id in VARIABLES:
            values.append(arg.id)
        elif isinstance(arg, ast.Constant) and isinstance(arg.value, bool) and f.name == "per_beta":
            values.append(arg.value)
        elif isinstance(arg, ast.Constant) and type(arg.value) in (int, float) and math.isfinite(arg.value):
            values.append(float(arg.value))
        else:
            raise ValueError(f"bad argument for {f.name}")
    return cls(*values)


def tree_from_code(code: str) -> Node | None:
    """Read back the tree from the formula comment the symbolic proposer writes into its code."""
    for line in code.splitlines():
        stripped = line.strip()
        if stripped.startswith(FORMULA_PREFIX):
            return parse_formula(stripped[len(FORMULA_PREFIX):])
    return None


# --- code ---------------------------------------------------------------------------------------------------------

class _Writer:
    """Collects the assignment lines of a tree's code, naming intermediate terms after their kind."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._used: dict[str, int] = {}

    def bind(self, stem: str, expression: str) -> str:
        self._used[stem] = self._used.get(stem, 0) + 1
        name = stem if self._used[stem] == 1 else f"{stem}_{self._used[stem]}"
        self.lines.append(f"{name} = {expression}")
        return name

    def bind_child(self, child: Node) -> str:
        stem = f"{kind_of(child)}_term" if isinstance(child, LEAVES) else f"{kind_of(child)}_part"
        return self.bind(stem, child.expression(self))


def render(node: Node) -> str:
    """The tree as a loss function in the preference contract."""
    writer = _Writer()
    result = node.expression(writer)
    used = {leaf.var for leaf in leaves(node)}
    body = [
        FORMULA_PREFIX + formula(node),
        "r_chosen = policy_chosen_logps - reference_chosen_logps",
        "r_rejected = policy_rejected_logps - reference_rejected_logps",
        "x = beta * (r_chosen - r_rejected)",
    ]
    body += [f"{var} = {VARIABLES[var]}" for var in ("xc", "xr") if var in used]
    body += writer.lines + [f"return {result}"]
    header = ("def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
              "reference_rejected_logps, beta):")
    return "\n".join([header] + ["    " + line for line in body]) + "\n"
