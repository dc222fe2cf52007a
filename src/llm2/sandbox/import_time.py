"""What runs when a module is imported or a function defined — in a candidate, an exported module or a file named
as ``FILE.py:NAME`` — must be nothing but imports, constants and the definitions themselves.

A default argument, a decorator, an annotation that computes, a class body or a module-level expression runs at
import time: inert in the sandbox, but live in the user's process once the code is exported and imported
(docs/security.md). These rules refuse them, so that importing verified code runs none of the candidate's code.
"""

from __future__ import annotations

import ast
from typing import Iterator

Problem = tuple[ast.AST, str]
_NUMERIC_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div)  # no ** or str * n: a constant must stay small


def import_time_problems(tree: ast.Module) -> Iterator[Problem]:
    """(node, message) for each statement or part of a definition that would run code at import or definition."""
    for node in tree.body:
        if (isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef))
                or is_string_statement(node)):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            yield from _constant_assignment(node)
        elif not isinstance(node, ast.ClassDef):  # a class gets its own message below
            yield node, (f"a top-level {describe(node)} is not allowed; only imports, constants and functions may "
                         "appear outside a function")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _definition(node)
        elif isinstance(node, ast.AnnAssign) and not is_name_only(node.annotation):
            yield node, ("an annotation that computes something is not allowed (it is evaluated when the code "
                         "runs); annotate with type names only")
        elif isinstance(node, ast.ClassDef):
            yield node, f"defines the class {node.name!r}; a candidate needs no classes (a class body runs)"


def _constant_assignment(node: ast.Assign | ast.AnnAssign) -> Iterator[Problem]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    shown = ", ".join(_text(t) for t in targets)
    if not all(_is_name_target(t) for t in targets):
        yield node, f"the top-level assignment to {shown!r} does not bind a plain name; only constants may be set"
    elif node.value is None or not is_constant(node.value):
        yield node, (f"the top-level assignment to {shown!r} computes something at import; only constants (numbers, "
                     "strings, and tuples, lists or dicts of them) may be set outside a function")


def _definition(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> Iterator[Problem]:
    name = "a lambda" if isinstance(node, ast.Lambda) else f"the function {node.name!r}"
    args = node.args
    if args.defaults or any(d is not None for d in args.kw_defaults):
        yield node, (f"{name} has a default argument value, which is not allowed: defaults are evaluated when the "
                     "function is defined; set the value inside the function")
    if isinstance(node, ast.Lambda):
        return
    if node.decorator_list:
        yield node, f"the function {node.name!r} has a decorator, which is not allowed (a decorator runs at definition)"
    annotations = [a.annotation for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
                   if a is not None and a.annotation is not None] + [node.returns]
    if not all(a is None or is_name_only(a) for a in annotations):
        yield node, (f"the function {node.name!r} has an annotation that computes something (annotations are "
                     "evaluated when the function is defined); annotate with type names only")


def is_constant(node: ast.AST) -> bool:
    """A value importing may compute: literals, names and dotted names, and containers of them."""
    if isinstance(node, (ast.Constant, ast.Name)) or _is_number(node):
        return True
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, (ast.Name, ast.Attribute)) and is_constant(node.value)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(is_constant(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and is_constant(k) for k in node.keys) and all(is_constant(v) for v in node.values)
    return False


def _is_number(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float, complex)) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        return _is_number(node.operand)
    return isinstance(node, ast.BinOp) and isinstance(node.op, _NUMERIC_OPERATORS) \
        and _is_number(node.left) and _is_number(node.right)


def is_name_only(node: ast.AST) -> bool:
    """An annotation that only names types: ``torch.Tensor``, ``list[float]``, ``float | None``, ``"Tensor"``."""
    if isinstance(node, (ast.Name, ast.Constant)):
        return True
    if isinstance(node, ast.Attribute):
        return is_name_only(node.value) and not isinstance(node.value, ast.Constant)
    if isinstance(node, ast.Subscript):
        return is_name_only(node.value) and is_name_only(node.slice)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(is_name_only(e) for e in node.elts)
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) \
        and is_name_only(node.left) and is_name_only(node.right)


def _is_name_target(node: ast.AST) -> bool:
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_is_name_target(e) for e in node.elts)
    return isinstance(node, ast.Name)


def is_string_statement(node: ast.AST) -> bool:
    """A bare string on a line of its own (a docstring, say)."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _text(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - only for the message
        return type(node).__name__


def describe(node: ast.AST) -> str:
    names = {ast.Expr: "expression", ast.For: "for loop", ast.While: "while loop", ast.If: "if statement",
             ast.With: "with statement", ast.Try: "try statement", ast.ClassDef: "class", ast.Delete: "del"}
    return names.get(type(node), type(node).__name__)
