"""Read one function of a Python file as candidate code, without running anything.

The format ``llm2 export`` writes (one self-contained function per algorithm, the thought as its docstring) and any
hand-written file: ``FILE.py:NAME`` picks the function ``NAME``; ``FILE.py`` alone, the only function that takes the
contract's arguments. Only the file's text is parsed; the function's text must pass the static checks (nothing
that runs at definition time: no default values, decorators or computing annotations), and is evaluated later,
like any candidate, in the sandbox.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from llm2.sandbox.static_checks import static_check
from llm2.task_api.base import Contract


@dataclass(frozen=True)
class FunctionSource:
    name: str
    code: str  # the function's own text, docstring kept
    thought: str  # its docstring


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"path/to/file.py:NAME"`` -> (path, NAME); a spec without ``:NAME`` -> (path, None)."""
    path, sep, name = spec.rpartition(":")
    if sep and name.isidentifier() and path:
        return path, name
    return spec, None


def read_function(spec: str, contract: Contract) -> FunctionSource:
    """The function ``spec`` names, checked; ValueError with a one-line reason when the file or function is not
    usable or the static checks refuse it."""
    arguments = contract.arguments
    path_text, name = split_spec(spec)
    path = Path(path_text)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path_text}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        tree = ast.parse(text, filename=path_text)
    except SyntaxError as exc:
        raise ValueError(f"{path_text}: syntax error at line {exc.lineno}: {exc.msg}") from None
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    if name is None:
        matching = [n for n, node in functions.items() if _arguments(node) == list(arguments)]
        if len(matching) != 1:
            found = ", ".join(functions) or "none"
            raise ValueError(f"{path_text}: {len(matching)} functions take the contract's arguments (functions: "
                             f"{found}); choose one with {path_text}:NAME")
        name = matching[0]
    if name not in functions:
        raise ValueError(f"{path_text} has no function {name!r}; it defines: {', '.join(functions) or 'none'}")
    node = functions[name]
    if _arguments(node) != list(arguments):
        raise ValueError(f"{path_text}:{name} takes ({', '.join(_arguments(node))}); the contract's arguments are "
                         f"({', '.join(arguments)})")
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])  # decorators are the function's text too
    code = "\n".join(text.splitlines()[first - 1:node.end_lineno]) + "\n"
    problems = static_check(code, contract)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValueError(f"{path_text}:{name} is refused by the static checks: {problems[0]}{more}")
    return FunctionSource(name, code, ast.get_docstring(node) or "")


def _arguments(node: ast.FunctionDef) -> list[str]:
    return [a.arg for a in node.args.posonlyargs + node.args.args]
