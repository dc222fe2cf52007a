"""Read objectives from a Python file, the format ``llm2 export`` writes.

Each objective is a top-level function named after it, taking the contract's arguments, with the proposer's thought
as its docstring; optional module-level ``FORMULAS`` and ``SOURCES`` dicts (name -> text) add formula and source.
The file is parsed, never imported: only the chosen function's own text is compiled.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Iterable

from llm2.objectives.contract import PREFERENCE_CONTRACT
from llm2.objectives.objective import Objective, objective_from_code, rename_function

FILE_HEADER = '''"""Preference objectives exported by llm2. Load one with llm2.objectives.load_objective_file("FILE.py:NAME")."""

import math

import torch
import torch.nn.functional as F
'''


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


def objective_source(objective: Objective) -> str:
    """The objective as a top-level function named after it, its thought as the docstring (the file format above)."""
    if not objective.name.isidentifier():
        raise ValueError(f"objective name {objective.name!r} is not a Python identifier")
    tree = ast.parse(objective.code)
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef)
                 and n.name == PREFERENCE_CONTRACT.function_name), None)
    if node is None:
        raise ValueError(f"objective {objective.name!r}: its code defines no function "
                         f"{PREFERENCE_CONTRACT.function_name!r}")
    lines = objective.code.rstrip("\n").splitlines()
    if objective.thought:
        first = node.body[0]
        if first.lineno == node.lineno:
            raise ValueError(f"objective {objective.name!r}: put the body of {PREFERENCE_CONTRACT.function_name!r}"
                             " on its own lines")
        indent = " " * first.col_offset
        thought = objective.thought.strip().replace("\\", "\\\\").replace('"', '\\"').splitlines()
        docstring = [f'{indent}"""{thought[0]}'] + [f"{indent}{line}".rstrip() for line in thought[1:]]
        docstring[-1] += '"""'
        lines[first.lineno - 1:first.lineno - 1] = docstring
    return rename_function("\n".join(lines) + "\n", PREFERENCE_CONTRACT.function_name, objective.name)


def write_objective_file(path: str | Path, objectives: Iterable[Objective]) -> Path:
    """Write objectives in the format load_objective_file reads, with FORMULAS and SOURCES dicts."""
    objectives = list(objectives)
    formulas = {o.name: o.formula for o in objectives if o.formula}
    sources = {o.name: o.source for o in objectives if o.source}
    parts = [FILE_HEADER, f"FORMULAS = {json.dumps(formulas, indent=4, ensure_ascii=False)}\n",
             f"SOURCES = {json.dumps(sources, indent=4, ensure_ascii=False)}\n"]
    parts += ["\n" + objective_source(o) for o in objectives]
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
