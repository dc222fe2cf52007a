"""A hash of what code does, not how it is written, to spot a candidate the run has already evaluated.

Docstrings, comments and formatting vanish with the AST; local variable names and the names of top-level functions
are replaced by their order of first appearance, so renaming either gives the same hash. Argument names are kept:
they are the contract's names. Constants are kept, so a tuned constant is a new candidate.
"""

from __future__ import annotations

import ast
import hashlib

from llm2.archive.text import clean_text


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body or [ast.Pass()]


def _bound_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Names the function binds locally (not its own arguments), in source order."""
    declared_global = {name for node in ast.walk(function) if isinstance(node, (ast.Global, ast.Nonlocal))
                       for name in node.names}
    own_arguments = {arg.arg for arg in ast.walk(function.args) if isinstance(arg, ast.arg)}
    names: list[str] = []

    def note(name: str | None) -> None:
        if name and name not in declared_global and name not in own_arguments and name not in names:
            names.append(name)

    class Collector(ast.NodeVisitor):
        def visit_Name(self, node: ast.Name) -> None:
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                note(node.id)

        def visit_arg(self, node: ast.arg) -> None:  # arguments of nested functions and lambdas
            note(node.arg)

        def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
            note(node.name)
            self.generic_visit(node)

        def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
            if node is not function:
                note(node.name)
            self.generic_visit(node)

        visit_AsyncFunctionDef = visit_FunctionDef

    for statement in function.body:
        Collector().visit(statement)
    return names


class _Renamer(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg = self.mapping.get(node.arg, node.arg)
        node.annotation = None
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.ExceptHandler:
        if node.name:
            node.name = self.mapping.get(node.name, node.name)
        return self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.name = self.mapping.get(node.name, node.name)
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef


def _normalise(tree: ast.Module) -> ast.Module:
    top_functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    function_names = {node.name: f"_function{i}" for i, node in enumerate(top_functions)}
    for node in top_functions:
        local_names = {name: f"_local{i}" for i, name in enumerate(_bound_names(node))}
        _Renamer({**function_names, **local_names}).visit(node)
        node.returns = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.body = _strip_docstring(node.body)
    # Module-level references to the functions (e.g. an alias) follow the renaming too.
    for statement in tree.body:
        if statement not in top_functions:
            _Renamer(function_names).visit(statement)
    return tree


def normalized_code_hash(code: str) -> str:
    """SHA-256 of the normalised AST; code that does not parse falls back to whitespace-normalised text. The code
    is cleaned first, as the archive stores it (a lone surrogate cannot even be encoded)."""
    code = clean_text(code)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: source with null bytes
        return hashlib.sha256(("text:" + " ".join(code.split())).encode()).hexdigest()
    dumped = ast.dump(_normalise(tree), annotate_fields=False, include_attributes=False)
    return hashlib.sha256(("ast:" + dumped).encode()).hexdigest()
