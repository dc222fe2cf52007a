"""The first stage of the cascade: read the candidate's syntax tree and reject what no loss function needs.

Nothing here runs the code. These checks are a cheap, explainable first filter that gives the proposer a precise
reason; the process sandbox (``llm2.sandbox.limits``) is the barrier that holds when a trick slips past them.
"""

from __future__ import annotations

import ast

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

_ALLOWED_TOP_LEVEL = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign, ast.AnnAssign)


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
        self.module_aliases: set[str] = {"torch", "F", "math"}  # names bound to modules (pre-seeded by the loader)

    def problem(self, node: ast.AST | int, message: str) -> None:
        line = node if isinstance(node, int) else getattr(node, "lineno", 0)
        self.problems.append((line, message))

    def run(self, tree: ast.Module) -> list[str]:
        self._collect_aliases(tree)
        self._check_top_level(tree)
        self.visit(tree)
        return [f"line {line}: {message}" for line, message in sorted(self.problems, key=lambda p: p[0])]

    # -- structure ---------------------------------------------------------------------------------------------
    def _check_top_level(self, tree: ast.Module) -> None:
        name = self.contract.function_name
        functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for node in tree.body:
            is_docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str)
            if not isinstance(node, _ALLOWED_TOP_LEVEL) and not is_docstring:
                self.problem(node, f"a top-level {_describe(node)} is not allowed; only imports, constants and "
                                   f"the function {name!r} may appear outside it")
        if not functions:
            self.problem(1, f"no function defined; define `def {name}({', '.join(self.contract.arguments)})`")
            return
        if len(functions) > 1:
            listed = ", ".join(f"{f.name!r} (line {f.lineno})" for f in functions)
            self.problem(functions[1], f"{len(functions)} top-level functions ({listed}); define exactly one, "
                                       f"{name!r} (nest helpers inside it)")
        target = next((f for f in functions if f.name == name), None)
        if target is None:
            self.problem(functions[0], f"the function is named {functions[0].name!r}; it must be named {name!r}")
            target = functions[0]
        if isinstance(target, ast.AsyncFunctionDef):
            self.problem(target, f"{target.name!r} is async; it must be a plain def")
        self._check_signature(target)

    def _check_signature(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = function.args
        found = [a.arg for a in args.posonlyargs + args.args]
        wanted = list(self.contract.arguments)
        extras = args.vararg or args.kwarg or args.kwonlyargs
        if found != wanted or extras:
            shown = found + ([f"*{args.vararg.arg}"] if args.vararg else []) + [a.arg for a in args.kwonlyargs] \
                + ([f"**{args.kwarg.arg}"] if args.kwarg else [])
            self.problem(function, f"def {function.name}({', '.join(shown)}) has the wrong arguments; the contract "
                                   f"requires ({', '.join(wanted)}) in this order")

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
                self.problem(node, f"imports {alias.name!r} from {module!r}, which is not allowed in a loss")
            self._check_bound_name(node, alias.asname)

    def _check_bound_name(self, node: ast.AST, name: str | None) -> None:
        if name and name.startswith("__"):
            self.problem(node, f"binds the dunder name {name!r}")

    # -- names and attributes ----------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("__") and node.id.endswith("__"):
            self.problem(node, f"uses the dunder name {node.id!r}, which is not allowed")
        elif node.id in FORBIDDEN_NAMES:
            self.problem(node, f"uses {node.id!r}, which is not allowed in a loss")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            kind = "dunder" if node.attr.startswith("__") else "private"
            self.problem(node, f"accesses the {kind} attribute {node.attr!r}, which is not allowed")
        elif node.attr in FORBIDDEN_ATTRIBUTES:
            self.problem(node, f"accesses {_dotted(node)!r}; the attribute {node.attr!r} is not allowed in a loss")
        if isinstance(node.ctx, (ast.Store, ast.Del)) and _root_name(node) in self.module_aliases:
            verb = "assigns to" if isinstance(node.ctx, ast.Store) else "deletes"
            self.problem(node, f"{verb} {_dotted(node)!r}: changing a module (monkey-patching) is not allowed")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check_definition(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._check_definition(node)

    def _check_definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.decorator_list:
            self.problem(node, f"the function {node.name!r} has a decorator, which is not allowed")
        if node.name.startswith("__"):
            self.problem(node, f"defines the dunder name {node.name!r}")
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.problem(node, f"defines the class {node.name!r}; a loss needs no classes")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.problem(node, f"'global {', '.join(node.names)}' is not allowed; keep state inside the function")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.problem(node, f"'nonlocal {', '.join(node.names)}' is not allowed; keep state inside the function")


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
