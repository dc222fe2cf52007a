"""The first stage of the cascade: read the candidate's syntax tree and reject what no loss function needs.

Nothing here runs the code. These checks are a cheap, explainable first filter that gives the proposer a precise
reason; the process sandbox (``llm2.sandbox.limits``) is the barrier that holds when a trick slips past them.
"""

from __future__ import annotations

import ast
import re
from typing import Sequence

from llm2.tasks.base import Contract

MAX_CODE_BYTES = 100_000

# Builtins that reach the interpreter, the file system or other objects' internals.
FORBIDDEN_NAMES = frozenset({
    "__import__", "open", "eval", "exec", "compile", "globals", "locals", "vars", "getattr", "setattr", "delattr",
    "hasattr", "input", "breakpoint", "help", "exit", "quit", "memoryview", "dir", "object", "type", "super",
    "classmethod", "staticmethod", "property",
})

# Attribute names that lead out of the tensor world: modules re-exported by torch/numpy (torch.os, torch.sys),
# pickle-based loading, file writers, code compilation, native-library loading, global RNG and default-state knobs.
FORBIDDEN_ATTRIBUTES = frozenset({
    # modules reachable as attributes of other modules
    "os", "sys", "subprocess", "builtins", "importlib", "ctypes", "socket", "pickle", "shutil", "pathlib", "io",
    "multiprocessing", "threading", "signal", "gc", "inspect", "tempfile", "glob", "marshal", "types", "runpy",
    "codecs", "platform", "weakref", "copyreg", "resource", "select", "mmap",
    # torch: files, pickles, code loading and compilation, processes, global state
    "load", "save", "from_file", "hub", "jit", "compile", "compiler", "ops", "classes", "library", "utils",
    "distributed", "package", "onnx", "serialization", "profiler", "backends", "cuda", "mps", "xpu", "fx",
    "export", "testing", "manual_seed", "seed", "initial_seed", "set_rng_state", "get_rng_state", "random",
    "set_default_dtype", "set_default_device", "set_default_tensor_type", "set_num_threads",
    "set_num_interop_threads", "set_flush_denormal", "use_deterministic_algorithms", "set_grad_enabled",
    "set_printoptions", "overrides",
    # numpy arrays: file writers and pickles
    "tofile", "dump", "dumps",
})

# Attributes of frames (f_back, f_globals, f_builtins), generators and coroutines (gi_frame, cr_frame, ag_frame),
# tracebacks (tb_frame, tb_next) and code objects (co_code, co_consts): they lead from any generator or exception
# to the frames of the code that called the candidate, and from there to its globals and builtins.
FRAME_ATTRIBUTE_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_")

_ALLOWED_TOP_LEVEL = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign, ast.AnnAssign)
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
    size = len(code.encode("utf-8", errors="replace"))
    if size > MAX_CODE_BYTES:
        return [f"the code is {size:,} bytes; the limit is {MAX_CODE_BYTES:,}"]
    try:
        tree = ast.parse(code, filename="<candidate>")
    except SyntaxError as exc:
        return [f"line {exc.lineno}: syntax error: {exc.msg}"]
    except (RecursionError, MemoryError, ValueError) as exc:
        return [f"the code cannot be parsed ({type(exc).__name__}: it is nested too deeply or holds a NUL byte)"]
    return _Checker(contract).run(tree)


def static_error(problems: list[str]) -> str:
    """One line for the proposer, from ``static_check``'s problems."""
    return "static check: " + "; ".join(problems)


class _Checker(ast.NodeVisitor):
    def __init__(self, contract: Contract):
        self.contract = contract
        self.problems: list[tuple[int, str]] = []
        self.module_aliases: set[str] = set(contract.preloaded)  # names bound to modules (the loader binds these)
        self.docstrings: set[int] = set()  # ids of the string constants that are docstrings (free text)

    def problem(self, node: ast.AST | int, message: str) -> None:
        line = node if isinstance(node, int) else getattr(node, "lineno", 0)
        self.problems.append((line, message))

    def run(self, tree: ast.Module) -> list[str]:
        self._collect_aliases(tree)
        self._collect_docstrings(tree)
        self._check_top_level(tree)
        self.visit(tree)
        return [f"line {line}: {message}" for line, message in sorted(self.problems, key=lambda p: p[0])]

    # -- structure ---------------------------------------------------------------------------------------------
    def _check_top_level(self, tree: ast.Module) -> None:
        for node in tree.body:
            if not isinstance(node, (*_ALLOWED_TOP_LEVEL, ast.AsyncFunctionDef)) and not _is_docstring(node):
                self.problem(node, f"a top-level {_describe(node)} is not allowed; only imports, constants and "
                                   "functions may appear outside a function")
        entry, where = _entry_function(tree, self.contract.arguments)
        if isinstance(entry, str):
            self.problem(where, entry)

    def _collect_docstrings(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body \
                    and _is_docstring(node.body[0]):
                self.docstrings.add(id(node.body[0].value))

    def _collect_aliases(self, tree: ast.Module) -> None:
        """Every name bound to a module, so that patching ``alias.attr = ...`` is caught however it is spelled."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                self.module_aliases.update(a.asname or a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                self.module_aliases.update(a.asname or a.name for a in node.names)
        changed = True
        while changed:  # names assigned from an alias are aliases too (m = torch)
            changed = False
            for node in ast.walk(tree):
                if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None \
                        and _root_name(node.value) in self.module_aliases:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        for name in ast.walk(target):
                            if isinstance(name, ast.Name) and name.id not in self.module_aliases:
                                self.module_aliases.add(name.id)
                                changed = True

    # -- imports -----------------------------------------------------------------------------------------------
    def _allowed_text(self) -> str:
        return ", ".join(sorted(self.contract.allowed_imports))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in self.contract.allowed_imports:
                self.problem(node, f"imports {alias.name!r}, which is not allowed; allowed imports: "
                                   f"{self._allowed_text()}")
            self._check_bound_name(node, alias.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        allowed = self.contract.allowed_imports
        if node.level:
            self.problem(node, f"relative import 'from {'.' * node.level}{node.module or ''}' is not allowed; "
                               f"allowed imports: {self._allowed_text()}")
            return
        module = node.module or ""
        for alias in node.names:
            full = f"{module}.{alias.name}"
            if alias.name == "*":
                self.problem(node, f"'from {module} import *' is not allowed; import names explicitly")
            elif full in allowed:
                pass  # from torch.nn import functional
            elif module not in allowed:
                self.problem(node, f"imports from {module!r}, which is not allowed; allowed imports: "
                                   f"{self._allowed_text()}")
            elif alias.name.startswith("_") or alias.name in FORBIDDEN_ATTRIBUTES:
                self.problem(node, f"imports {alias.name!r} from {module!r}, which is not allowed in a candidate")
            self._check_bound_name(node, alias.asname)

    def _check_bound_name(self, node: ast.AST, name: str | None) -> None:
        if name and name.startswith("__"):
            self.problem(node, f"binds the dunder name {name!r}")

    # -- names and attributes ----------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("__") and node.id.endswith("__"):
            self.problem(node, f"uses the dunder name {node.id!r}, which is not allowed")
        elif node.id in FORBIDDEN_NAMES:
            self.problem(node, f"uses {node.id!r}, which is not allowed in a candidate")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            kind = "dunder" if node.attr.startswith("__") else "private"
            self.problem(node, f"accesses the {kind} attribute {node.attr!r}, which is not allowed")
        elif node.attr.startswith(FRAME_ATTRIBUTE_PREFIXES):
            self.problem(node, f"accesses {node.attr!r}, an attribute of frames, generators, coroutines, tracebacks "
                               "or code objects, which is not allowed (it leads to other code's frames)")
        elif node.attr in FORBIDDEN_ATTRIBUTES:
            self.problem(node, f"accesses {_dotted(node)!r}; the attribute {node.attr!r} is not allowed in a candidate")
        if isinstance(node.ctx, (ast.Store, ast.Del)) and _root_name(node) in self.module_aliases:
            verb = "assigns to" if isinstance(node.ctx, ast.Store) else "deletes"
            self.problem(node, f"{verb} {_dotted(node)!r}: changing a module (monkey-patching) is not allowed")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if not isinstance(node.value, str) or id(node) in self.docstrings:
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

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check_definition(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.problem(node, f"async def {node.name!r} is not allowed; use a plain def")
        self._check_definition(node)

    def _check_definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.decorator_list:
            self.problem(node, f"the function {node.name!r} has a decorator, which is not allowed")
        if node.name.startswith("__"):
            self.problem(node, f"defines the dunder name {node.name!r}")
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.problem(node, f"defines the class {node.name!r}; a candidate needs no classes")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.problem(node, f"'global {', '.join(node.names)}' is not allowed; keep state inside the function")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.problem(node, f"'nonlocal {', '.join(node.names)}' is not allowed; keep state inside the function")


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):  # not through calls: torch.zeros(3) is a new object
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - only for the message
        return getattr(node, "attr", "?")


def _describe(node: ast.AST) -> str:
    names = {ast.Expr: "expression", ast.For: "for loop", ast.While: "while loop", ast.If: "if statement",
             ast.With: "with statement", ast.Try: "try statement", ast.ClassDef: "class", ast.Delete: "del"}
    return names.get(type(node), type(node).__name__)
