"""Read objectives from a Python file, the format ``llm2 export`` writes.

Each objective is a top-level function named after it, taking the contract's arguments, with the proposer's thought
as its docstring; optional module-level ``FORMULAS`` and ``SOURCES`` dicts (name -> text) add formula and source.
The file is parsed, never imported: only the chosen function's own text is compiled.
"""

from __future__ import annotations

import ast
from pathlib import Path

from llm2.objectives.contract import PREFERENCE_CONTRACT
from llm2.objectives.objective import Objective, objective_from_code, rename_function


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"path/to/file.py:NAME"`` -> (path, NAME); a spec without ``:NAME`` -> (path, None)."""
    path, sep, name = spec.rpartition(":")
    if sep and name.isidentifier() and path:
        return path, name
    return spec, None


def load_objective_file(spec: str) -> Objective:
    """Load ``FILE.py:NAME``, or ``FILE.py`` when the file defines exactly one objective function."""
    path_text, name = split_spec(spec)
    path = Path(path_text)
    if not path.is_file():
        raise ValueError(f"objective file not found: {path_text}")
    text = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text, filename=path_text)
    except SyntaxError as exc:
        raise ValueError(f"{path_text}: syntax error at line {exc.lineno}: {exc.msg}") from None
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    if not functions:
        raise ValueError(f"{path_text} defines no function; expected one per objective, e.g. "
                         f"def my_loss({', '.join(PREFERENCE_CONTRACT.arguments)})")
    if name is None:
        if len(functions) != 1:
            raise ValueError(f"{path_text} defines {len(functions)} functions ({', '.join(functions)});"
                             f" choose one with {path_text}:NAME")
        name = next(iter(functions))
    if name not in functions:
        raise ValueError(f"{path_text} has no function {name!r}; it defines: {', '.join(functions)}")
    node = functions[name]
    thought = ast.get_docstring(node) or ""
    code = rename_function(function_text_without_docstring(text, node), name, PREFERENCE_CONTRACT.function_name)
    formulas, sources = module_dict(tree, "FORMULAS"), module_dict(tree, "SOURCES")
    return objective_from_code(name, code, thought=thought, formula=formulas.get(name, ""),
                               source=sources.get(name, f"discovered ({path_text})"))


def function_text_without_docstring(text: str, node: ast.FunctionDef) -> str:
    """The function's source lines (decorators excluded), minus its docstring, which becomes the thought."""
    lines = text.splitlines()
    keep = range(node.lineno - 1, node.end_lineno)
    docstring_lines: set[int] = set()
    first = node.body[0]
    if ast.get_docstring(node) is not None and len(node.body) > 1:
        docstring_lines = set(range(first.lineno - 1, first.end_lineno))
    return "\n".join(lines[i] for i in keep if i not in docstring_lines) + "\n"


def module_dict(tree: ast.Module, variable: str) -> dict[str, str]:
    """A module-level ``VARIABLE = {...}`` of literal strings, or {} when absent or not a literal."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == variable for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):
                return {}
            return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    return {}
