"""The first stage of the cascade: read the candidate's syntax tree and accept only what the task's vocabulary allows.

Nothing here runs the code. The check is an allow-list (``Contract.vocabulary``): the modules a candidate may
import, per module the attributes it may reach, the builtins it may name and the attributes of values (tensor
methods) it may use; anything else is refused with its line, so an attribute chain through re-exported modules
(``torch.<module>.<module>...``) has nothing to walk on. Statement and expression kinds are allow-listed too, and
nothing may run at import or definition time (``llm2.sandbox.import_time``). The same verifier checks what
``llm2 export`` writes and every ``FILE.py:NAME`` before it is loaded (``verify_module``). The process sandbox
(``llm2.sandbox.limits``) is the barrier that holds if a trick slips past.
"""

from __future__ import annotations

import ast
import re
from typing import Sequence

from llm2.sandbox.import_time import describe, import_time_problems, is_string_statement
from llm2.sandbox.scopes import SCOPE_NODES, Scope, build_scopes, inner_parts, outer_parts
from llm2.task_api.base import Contract, Vocabulary

MAX_CODE_BYTES = 100_000

# Attributes of frames (f_back, f_globals, f_builtins), generators and coroutines (gi_frame, cr_frame, ag_frame),
# tracebacks (tb_frame, tb_next) and code objects (co_code, co_consts): no vocabulary lists them; they get their
# own message because they are the classic way from any generator to other code's frames.
FRAME_ATTRIBUTE_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_")

# The candidate language: every kind of statement and expression a candidate may use (no class, generator
# function, async, global, match, ...); operators and load/store contexts are always allowed.
ALLOWED_NODES = (
    ast.Module, ast.FunctionDef, ast.Return, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.While, ast.If,
    ast.With, ast.withitem, ast.Raise, ast.Try, ast.ExceptHandler, ast.Assert, ast.Import, ast.ImportFrom, ast.alias,
    ast.Expr, ast.Pass, ast.Break, ast.Continue, ast.Delete, ast.BoolOp, ast.NamedExpr, ast.BinOp, ast.UnaryOp,
    ast.Lambda, ast.IfExp, ast.Dict, ast.Set, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
    ast.comprehension, ast.Compare, ast.Call, ast.keyword, ast.FormattedValue, ast.JoinedStr, ast.Constant,
    ast.Attribute, ast.Subscript, ast.Starred, ast.Name, ast.List, ast.Tuple, ast.Slice, ast.arguments, ast.arg,
    ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.expr_context,
)

_DUNDER = re.compile(r"__\w+__")
_FRAME_NAME = re.compile(rf"(?:{'|'.join(FRAME_ATTRIBUTE_PREFIXES)})\w+")
_FORMAT_ATTRIBUTE = re.compile(r"\{[^{}:!]*\.[A-Za-z_]")  # "{0.attr}": str.format reads attributes
_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five"}


def find_entry_function(tree: ast.Module, arguments: Sequence[str]) -> ast.FunctionDef | str:
    """The one top-level function whose arguments are exactly ``arguments`` (any name), or why there is none.

    Other top-level functions (helpers with other arguments) may sit beside it. Defaults are allowed; ``*args``,
    keyword-only arguments and ``**kwargs`` are not.
    """
    return _entry_function(tree, arguments)[0]


def _entry_function(tree: ast.Module, arguments: Sequence[str]) -> tuple[ast.FunctionDef | str, ast.AST | int]:
    """``find_entry_function``'s answer, and where a reason is reported: at the second taker, else at the first
    function, else at line 1."""
    functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    taking = [f for f in functions if _positional_arguments(f) == list(arguments) and not _extra_arguments(f)]
    plain = [f for f in taking if isinstance(f, ast.FunctionDef)]
    if len(plain) == 1:
        return plain[0], plain[0]
    if plain:
        listed = ", ".join(f"{f.name} (line {f.lineno})" for f in plain)
        return (f"{_COUNTS.get(len(plain), str(len(plain)))} functions take the contract's arguments: {listed}; "
                "define exactly one"), plain[1]
    reason = f"no function takes the contract's arguments ({', '.join(arguments)})"
    if taking:
        async_one = f"{taking[0].name!r} (line {taking[0].lineno})"
        return f"{reason}; {async_one} does, but it is async: make it a plain def", functions[0]
    if functions:
        shown = "; ".join(f"def {f.name}({', '.join(_shown_arguments(f))}) at line {f.lineno}" for f in functions[:3])
        return f"{reason}, with these names in this order and nothing else; found {shown}", functions[0]
    return f"{reason}: define one top-level function with exactly these arguments, in this order", 1


def _positional_arguments(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [a.arg for a in function.args.posonlyargs + function.args.args]


def _extra_arguments(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    args = function.args
    return bool(args.vararg or args.kwarg or args.kwonlyargs)


def _shown_arguments(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = function.args
    return _positional_arguments(function) + ([f"*{args.vararg.arg}"] if args.vararg else []) \
        + [a.arg for a in args.kwonlyargs] + ([f"**{args.kwarg.arg}"] if args.kwarg else [])


def static_check(code: str, contract: Contract) -> list[str]:
    """Problems with ``code`` as a candidate for ``contract`` (each with its line), or an empty list when fine."""
    tree = _parse(code)
    if isinstance(tree, list):
        return tree
    checker = _Checker(contract.vocabulary, strings=True)
    entry, where = _entry_function(tree, contract.arguments)
    if isinstance(entry, str):
        checker.problem(where, entry)
    return checker.run(tree)


def verify_module(code: str, vocabulary: Vocabulary) -> list[str]:
    """Problems with ``code`` as a module of the task's functions (what ``llm2 export`` writes, a ``FILE.py:NAME``):
    the vocabulary and import-time rules of ``static_check``, without its rule of exactly one entry function."""
    tree = _parse(code)
    return tree if isinstance(tree, list) else _Checker(vocabulary, strings=False).run(tree)


def _parse(code: str) -> ast.Module | list[str]:
    size = len(code.encode("utf-8", errors="replace"))
    if size > MAX_CODE_BYTES:
        return [f"the code is {size:,} bytes; the limit is {MAX_CODE_BYTES:,}"]
    try:
        return ast.parse(code, filename="<candidate>")
    except SyntaxError as exc:
        return [f"line {exc.lineno}: syntax error: {exc.msg}"]
    except (RecursionError, MemoryError, ValueError) as exc:
        return [f"the code cannot be parsed ({type(exc).__name__}: it is nested too deeply or holds a NUL byte)"]


def static_error(problems: list[str]) -> str:
    """One line for the proposer, from ``static_check``'s problems."""
    return "static check: " + "; ".join(problems)


class _Checker(ast.NodeVisitor):
    """Every name resolved through its scope: a module (only its listed attributes), a value (only the listed
    methods), or else a builtin (only the listed ones)."""

    def __init__(self, vocabulary: Vocabulary, strings: bool):
        self.vocabulary = vocabulary
        self.strings = strings  # candidates: strings naming dunders or frame attributes are refused too
        self.problems: list[tuple[int, str]] = []
        self.docstrings: set[int] = set()  # ids of the string constants that are docstrings (free text)
        self.chained: set[int] = set()  # ids of the nodes that are the .value of an attribute
        self.scopes: dict[int, Scope] = {}
        self.scope: Scope | None = None
        self.statement = 0  # the index of the top-level statement being checked (module names bind in order)

    def problem(self, node: ast.AST | int, message: str) -> None:
        line = node if isinstance(node, int) else getattr(node, "lineno", 0)
        self.problems.append((line, message))

    def run(self, tree: ast.Module) -> list[str]:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body \
                    and is_string_statement(node.body[0]):
                self.docstrings.add(id(node.body[0].value))
            if isinstance(node, ast.Attribute):
                self.chained.add(id(node.value))
        for node, message in import_time_problems(tree):
            self.problem(node, message)
        self.scopes = build_scopes(tree, self.vocabulary.preloaded, self.vocabulary.modules)
        self.scope = self.scopes[id(tree)]
        for index, statement in enumerate(tree.body):
            self.statement = index
            self.visit(statement)
        return [f"line {line}: {message}" for line, message in sorted(self.problems, key=lambda p: p[0])]

    # -- the language and its scopes ---------------------------------------------------------------------------
    def visit(self, node: ast.AST) -> None:
        if not isinstance(node, ALLOWED_NODES):
            self._refuse_kind(node)
        if isinstance(node, SCOPE_NODES) and not isinstance(node, ast.Module):
            self._visit_scope(node)
        else:
            super().visit(node)

    def _refuse_kind(self, node: ast.AST) -> None:
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            word = "global" if isinstance(node, ast.Global) else "nonlocal"
            self.problem(node, f"'{word} {', '.join(node.names)}' is not allowed; keep state inside the function")
        elif isinstance(node, ast.AsyncFunctionDef):
            self.problem(node, f"async def {node.name!r} is not allowed; use a plain def")
        elif not isinstance(node, ast.ClassDef):  # import_time names classes
            self.problem(node, f"{_a(_kind(node))} is not allowed in a candidate")

    def _visit_scope(self, node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._check_bound_name(node, node.name)
        for part in outer_parts(node):
            self.visit(part)
        outer, self.scope = self.scope, self.scopes[id(node)]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for argument in ast.walk(node.args):
                if isinstance(argument, ast.arg):
                    self._check_bound_name(argument, argument.arg)
        for part in inner_parts(node):
            self.visit(part)
        self.scope = outer

    def _resolve(self, name: str) -> str | None:
        """The name's module, VALUE, or None when no scope binds it (a builtin)."""
        scope = self.scope
        while scope is not None:
            if name in scope.names and (scope.parent is not None or self.scope is not scope
                                        or scope.first[name] < self.statement):
                return scope.names[name]
            scope = scope.parent
        return None

    # -- imports -----------------------------------------------------------------------------------------------
    def _allowed_text(self) -> str:
        return ", ".join(sorted(self.vocabulary.modules))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in self.vocabulary.modules:
                self.problem(node, f"imports {alias.name!r}, which is not allowed; allowed imports: "
                                   f"{self._allowed_text()}")
            self._check_bound_name(node, alias.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        modules = self.vocabulary.modules
        if node.level:
            self.problem(node, f"relative import 'from {'.' * node.level}{node.module or ''}' is not allowed; "
                               f"allowed imports: {self._allowed_text()}")
            return
        module = node.module or ""
        for alias in node.names:
            if alias.name == "*":
                self.problem(node, f"'from {module} import *' is not allowed; import names explicitly")
            elif f"{module}.{alias.name}" in modules:
                pass  # from torch.nn import functional
            elif module not in modules:
                self.problem(node, f"imports from {module!r}, which is not allowed; allowed imports: "
                                   f"{self._allowed_text()}")
            elif alias.name not in modules[module]:
                self.problem(node, f"imports {alias.name!r} from {module!r}, which is not allowed in a candidate: "
                                   "it is not in the task's vocabulary")
            self._check_bound_name(node, alias.asname or alias.name)

    def _check_bound_name(self, node: ast.AST, name: str | None) -> None:
        if name and name.startswith("__"):
            self.problem(node, f"binds the dunder name {name!r}")

    # -- names and attributes ----------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("__") and node.id.endswith("__"):
            self.problem(node, f"uses the dunder name {node.id!r}, which is not allowed")
            return
        if not isinstance(node.ctx, ast.Load):
            return
        bound = self._resolve(node.id)
        if bound is None and node.id not in self.vocabulary.builtins:
            self.problem(node, f"uses {node.id!r}, which is not in the task's vocabulary (not a name the code "
                               "binds, nor one of the builtins it may use)")
        elif bound and id(node) not in self.chained:
            self.problem(node, f"uses the module {node.id!r} as a value; a candidate may only use the attributes "
                               f"the task's vocabulary lists ({node.id}.NAME)")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            kind = "dunder" if node.attr.startswith("__") else "private"
            self.problem(node, f"accesses the {kind} attribute {node.attr!r}, which is not allowed")
        elif node.attr.startswith(FRAME_ATTRIBUTE_PREFIXES) and node.attr not in self.vocabulary.methods:
            self.problem(node, f"accesses {node.attr!r}, an attribute of frames, generators, coroutines, tracebacks "
                               "or code objects, which is not allowed (it leads to other code's frames)")
        else:
            self._check_attribute(node)
        self.generic_visit(node)

    def _check_attribute(self, node: ast.Attribute) -> None:
        parts, base = [node.attr], node.value
        while isinstance(base, ast.Attribute):
            parts.insert(0, base.attr)
            base = base.value
        module = self._resolve(base.id) if isinstance(base, ast.Name) else None
        if not module:  # an attribute of a value: a method in the vocabulary (or str.format of a literal)
            if node.attr not in self.vocabulary.methods and not _formats_literal(node):
                verb = {ast.Store: "assigns to", ast.Del: "deletes"}.get(type(node.ctx), "accesses")
                self.problem(node, f"{verb} {_dotted(node)!r}; the attribute {node.attr!r} is not allowed: it is not "
                                   "among the task's tensor methods")
            return
        if not isinstance(node.ctx, ast.Load):
            verb = "assigns to" if isinstance(node.ctx, ast.Store) else "deletes"
            self.problem(node, f"{verb} {_dotted(node)!r}: changing a module (monkey-patching) is not allowed")
        elif id(node) not in self.chained:  # the whole chain, once, from its outermost attribute
            self._check_module_chain(node, base.id, module, parts)

    def _check_module_chain(self, node: ast.Attribute, root: str, module: str, parts: list[str]) -> None:
        """``root.a.b.c`` with root bound to ``module``: the longest listed module, then one listed attribute of
        it (dotted for a submodule's: "linalg.norm"), then methods of the value it names."""
        path = [*module.split("."), *parts]
        cut = max((i for i in range(1, len(path) + 1) if ".".join(path[:i]) in self.vocabulary.modules), default=0)
        owner, rest = ".".join(path[:cut]), path[cut:]
        shown = len(path) - len(parts)  # the parts of path that the root name stands for
        if not cut:
            self.problem(node, f"accesses {_dotted(node)!r}: the module {module!r} is not in the task's vocabulary")
            return
        if not rest:
            self.problem(node, f"uses the module {_dotted(node)!r} as a value; a candidate may only use the "
                               "attributes the task's vocabulary lists")
            return
        listed = self.vocabulary.modules.get(owner, frozenset())
        taken = max((i for i in range(1, len(rest) + 1) if ".".join(rest[:i]) in listed), default=0)
        if not taken:
            reached = ".".join([root, *path[shown:cut + 1]])
            self.problem(node, f"accesses {reached!r}; the attribute {rest[0]!r} is not allowed: it is not among "
                               f"{owner or module}'s attributes in the task's vocabulary")
            return
        for index in range(cut + taken, len(path)):
            if path[index] not in self.vocabulary.methods:
                reached = ".".join([root, *path[shown:index + 1]])
                self.problem(node, f"accesses {reached!r}; the attribute {path[index]!r} is not allowed: it is not "
                                   "among the task's tensor methods")
                return

    def visit_Constant(self, node: ast.Constant) -> None:
        if not self.strings or not isinstance(node.value, str) or id(node) in self.docstrings:
            return
        shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        dunder = _DUNDER.search(node.value)
        if dunder:
            named = "names a dunder" if dunder.group() == node.value else f"holds the dunder {dunder.group()!r}"
            self.problem(node, f"the string {shown!r} {named}; strings naming dunders are not allowed (as keys or "
                               "lookups they reach the interpreter's internals)")
        elif _FRAME_NAME.fullmatch(node.value):
            self.problem(node, f"the string {node.value!r} names a frame, generator, traceback or code attribute, "
                               "which is not allowed")
        elif _FORMAT_ATTRIBUTE.search(node.value):
            self.problem(node, f"the format string {shown!r} reads an attribute in a replacement field "
                               "({0.attr}), which is not allowed")

    def visit_Subscript(self, node: ast.Subscript) -> None:
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.startswith("_") \
                and not _DUNDER.search(key.value):
            self.problem(node, f"subscripts with the private key {key.value!r}, which is not allowed")
        self.generic_visit(node)


def _formats_literal(node: ast.Attribute) -> bool:
    """``"...".format``: the fields of a literal format string are checked like any string."""
    return node.attr == "format" and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - only for the message
        return getattr(node, "attr", "?")


def _kind(node: ast.AST) -> str:
    words = {ast.Yield: "yield (a generator function)", ast.YieldFrom: "yield from (a generator function)",
             ast.Await: "await", ast.Match: "match statement", ast.AsyncFor: "async for", ast.AsyncWith: "async with"}
    return words.get(type(node), describe(node))


def _a(text: str) -> str:
    return ("an " if text[0] in "aeiou" else "a ") + text
