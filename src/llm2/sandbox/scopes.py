"""Which names each scope of a candidate binds, and whether to a module: the static check resolves every name it
reads through these, so that a name nobody bound is a builtin (and must be in the task's vocabulary).

Python's rules, as far as the candidate language needs them: a name bound anywhere in a function is local to all
of it; a comprehension is a scope of its own whose first iterable is evaluated outside it; a walrus in a
comprehension binds in the enclosing function; default values, decorators and annotations are evaluated in the
enclosing scope. ``global``, ``nonlocal`` and classes are refused by the check, so they need no rules here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Collection, Iterator, Mapping

SCOPE_NODES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp,
               ast.DictComp, ast.GeneratorExp)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
VALUE = ""  # a binding to a value (anything but a module)


@dataclass
class Scope:
    node: ast.AST
    parent: "Scope | None"
    names: dict[str, str] = field(default_factory=dict)  # name -> its module's name, or VALUE
    first: dict[str, int] = field(default_factory=dict)  # module scope: name -> index of the statement binding it

    def bind(self, name: str, module: str = VALUE, statement: int = 0) -> None:
        if module or name not in self.names:  # bound both ways: a module, which the check treats more strictly
            self.names[name] = module
        self.first.setdefault(name, statement)

    def function_scope(self) -> "Scope":
        scope = self
        while isinstance(scope.node, _COMPREHENSIONS) and scope.parent is not None:
            scope = scope.parent
        return scope


def outer_parts(node: ast.AST) -> list[ast.AST]:
    """The parts of a scope-making node that are evaluated in the enclosing scope."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        annotations = [a.annotation for a in _all_arguments(args) if a.annotation is not None]
        return [*node.decorator_list, *args.defaults, *(d for d in args.kw_defaults if d is not None),
                *annotations, *([node.returns] if node.returns is not None else [])]
    if isinstance(node, ast.Lambda):
        return [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    if isinstance(node, _COMPREHENSIONS):
        return [node.generators[0].iter]
    return []


def inner_parts(node: ast.AST) -> list[ast.AST]:
    """The parts of a scope-making node that are evaluated in its own scope."""
    if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef)):
        return list(node.body)
    if isinstance(node, ast.Lambda):
        return [node.body]
    if isinstance(node, _COMPREHENSIONS):
        heads = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        parts: list[ast.AST] = []
        for index, generator in enumerate(node.generators):
            parts += [generator.target, *generator.ifs] + ([generator.iter] if index else [])
        return parts + heads
    return []


def _all_arguments(args: ast.arguments) -> Iterator[ast.arg]:
    yield from args.posonlyargs + args.args + args.kwonlyargs
    yield from (a for a in (args.vararg, args.kwarg) if a is not None)


def build_scopes(tree: ast.Module, preloaded: Mapping[str, str], modules: Collection[str]) -> dict[int, Scope]:
    """id(scope node) -> its Scope; the module scope starts with the preloaded names (bound before statement 0)."""
    table: dict[int, Scope] = {}
    module = Scope(tree, None)
    for name, module_name in preloaded.items():
        module.bind(name, module_name, statement=-1)
    table[id(tree)] = module
    for index, statement in enumerate(tree.body):
        _Collector(table, module, modules, index).collect(statement)
    return table


class _Collector:
    def __init__(self, table: dict[int, Scope], scope: Scope, modules: Collection[str], statement: int = 0):
        self.table, self.scope, self.modules, self.statement = table, scope, modules, statement

    def bind(self, name: str, module: str = VALUE, scope: Scope | None = None) -> None:
        (scope or self.scope).bind(name, module, self.statement)

    def collect(self, node: ast.AST) -> None:
        if isinstance(node, SCOPE_NODES):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.bind(node.name)
            for part in outer_parts(node):
                self.collect(part)
            inner = Scope(node, self.scope)
            self.table[id(node)] = inner
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for argument in _all_arguments(node.args):
                    inner.bind(argument.arg)
            collector = _Collector(self.table, inner, self.modules)
            for part in inner_parts(node):
                collector.collect(part)
            return
        if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            self.bind(node.target.id, scope=self.scope.function_scope())
            self.collect(node.value)
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            self.bind(node.id)
        elif isinstance(node, ast.Import):
            for alias in node.names:  # "import a.b" binds a (to module a); "import a.b as c" binds c to a.b
                root = alias.name.split(".")[0]
                self.bind(alias.asname or root, alias.name if alias.asname else root)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                full = f"{node.module or ''}.{alias.name}"
                self.bind(alias.asname or alias.name, full if full in self.modules else VALUE)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            self.bind(node.name)
        for child in ast.iter_child_nodes(node):
            self.collect(child)
