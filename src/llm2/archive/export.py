"""Write a run's best candidates as a plain Python module, by rewriting their source — never by running it.

Each candidate is checked by the static checks (which refuse anything that would run at import or definition
time: default arguments, decorators, computing annotations, module-level code), then becomes one self-contained
top-level function named after it (module-level helpers, constants and imports of the candidate move inside it),
with its thought, fitness and the task's numbers as the docstring; the whole module is verified again before it is
written. The module imports as a plain module and offers ``OBJECTIVES = {name: function}``; ``llm2 evaluate
--objective-file FILE.py:NAME`` reads one function back. What the functions are and how to use them comes from the
task (``Task.export_usage``).
"""

from __future__ import annotations

import ast
import builtins
import datetime
import json
import keyword
import re
import textwrap
from dataclasses import dataclass
from typing import Any

import llm2
from llm2.archive.records import ArchiveError, CandidateRecord, RunInfo
from llm2.sandbox.static_checks import find_entry_function, static_check, verify_module
from llm2.task_api.base import Contract

DOC_WIDTH = 100
_RESERVED = {"torch", "F", "math", "OBJECTIVES", "SOURCES"} | set(dir(builtins))


@dataclass(frozen=True)
class ExportEntry:
    function_name: str
    candidate: CandidateRecord
    source: str  # the function's text as written to the module


def function_identifier(name: str, taken: set[str]) -> str:
    """A valid, unused, lower-case Python identifier from a candidate's free-form name."""
    base = re.sub(r"\W+", "_", name.strip().lower(), flags=re.ASCII).strip("_") or "objective"
    if base[0].isdigit():
        base = f"objective_{base}"
    if keyword.iskeyword(base) or base in _RESERVED:
        base = f"{base}_objective"
    identifier, suffix = base, 2
    while identifier in taken:
        identifier, suffix = f"{base}_{suffix}", suffix + 1
    return identifier


def _preloaded_imports(contract: Contract) -> set[tuple[str, str | None]]:
    """(module, alias) pairs the module header provides: a candidate's own copy of them is dropped."""
    return {(module, None if module == name else name) for name, module in contract.vocabulary.preloaded.items()}


def _is_header_import(statement: ast.stmt, header: set[tuple[str, str | None]]) -> bool:
    if isinstance(statement, ast.Import):
        return all((alias.name, alias.asname) in header for alias in statement.names)
    if isinstance(statement, ast.ImportFrom) and statement.level == 0 and statement.module:
        return all((f"{statement.module}.{alias.name}", alias.asname) in header for alias in statement.names)
    return False


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def self_contained_function(code: str, contract: Contract, function_name: str, docstring: str) -> str:
    """The candidate as one function named ``function_name``, its helpers and constants moved inside it, with
    ``docstring``. Comments are lost: the code is rewritten through the syntax tree."""
    problems = static_check(code, contract)
    if problems:
        raise ArchiveError("; ".join(problems))
    tree = ast.parse(code)
    main = find_entry_function(tree, contract.arguments)
    if isinstance(main, str):
        raise ArchiveError(main)
    header = _preloaded_imports(contract)
    moved = [s for s in tree.body if s is not main and not _is_header_import(s, header)
             and not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    old_name = main.name
    main.name = function_name
    main.decorator_list = []
    doc = ast.Expr(ast.Constant(docstring))
    main.body = [doc, *moved, *(_without_docstring(main.body) or [ast.Pass()])]
    for node in ast.walk(main):  # calls to the function by its old name (recursion, aliases) follow the rename
        if isinstance(node, ast.Name) and node.id == old_name:
            node.id = function_name
    return ast.unparse(ast.fix_missing_locations(main)) + "\n"


def _docstring(candidate: CandidateRecord, run: RunInfo, task: Any) -> str:
    fitness = "n/a" if candidate.fitness is None else f"{candidate.fitness:.4f}"
    if candidate.fitness_std is not None:
        fitness += f" ± {candidate.fitness_std:.4f}"
    numbers = task.metrics_text(candidate.metrics)
    thought = candidate.thought.strip() or "(no thought recorded)"
    provenance = (f"llm2 candidate {candidate.name!r} (#{candidate.id}, generation {candidate.generation}) of run"
                  f" {run.run_id}, task {run.task}: {_texts(task, run).fitness_name} {fitness}"
                  f"{f', {numbers}' if numbers else ''}.")
    # Long reply lines are wrapped for reading; the thought's own line breaks are kept.
    lines = [wrapped for line in thought.splitlines() for wrapped in (textwrap.wrap(line, DOC_WIDTH) or [""])]
    return "\n".join([*lines, "", *textwrap.wrap(provenance, DOC_WIDTH)])


def _texts(task: Any, run: RunInfo) -> Any:
    """The task's texts for the run's settings (the fitness may be one of them)."""
    try:
        return task.texts_for(task.settings_from_dict(run.config.get("task_settings") or {}))
    except ValueError:
        return task.texts


def export_entries(candidates: list[CandidateRecord], run: RunInfo, task: Any) -> list[ExportEntry]:
    """Each candidate as a named, self-contained, checked function text (best first, names made unique)."""
    taken: set[str] = set()
    entries = []
    for candidate in candidates:
        identifier = function_identifier(candidate.name, taken)
        taken.add(identifier)
        try:
            source = self_contained_function(candidate.code, task.contract, identifier,
                                             _docstring(candidate, run, task))
        except (SyntaxError, ValueError, ArchiveError) as exc:
            raise ArchiveError(f"candidate #{candidate.id} ({candidate.name!r}) cannot be exported: {exc}") from None
        entries.append(ExportEntry(identifier, candidate, source))
    return entries


def module_text(entries: list[ExportEntry], run: RunInfo, task: Any, file_name: str = "objectives.py",
                exported_at: datetime.datetime | None = None) -> str:
    """The whole module: a header saying where it came from and how to use it, the functions, OBJECTIVES."""
    exported_at = exported_at or datetime.datetime.now().astimezone()
    names = [e.function_name for e in entries]
    example = names[0] if names else "NAME"
    module = file_name.removesuffix(".py")
    usage = task.export_usage(example, file_name).strip()
    header = f'''"""Discovered by llm2 (each a {task.texts.kind}): the best {len(entries)} of run {run.run_id}, task {run.task}.

Exported {exported_at:%Y-%m-%d %H:%M %Z} by llm2 {llm2.__version__}; best first: {", ".join(names)}.
Each function takes the task's arguments: ({", ".join(task.contract.arguments)}).

As a plain module:
    from {module} import OBJECTIVES
    function = OBJECTIVES["{example}"]

With llm2 (the code is evaluated in the sandbox, like any candidate):
    llm2 evaluate --task {run.task} --objective-file {file_name}:{example}
{(chr(10) + usage + chr(10)) if usage else ""}"""
'''
    imports = "\n".join(_import_line(name, module) for name, module in task.contract.vocabulary.preloaded.items())
    sources = {e.function_name: f"discovered by llm2: run {run.run_id}, candidate #{e.candidate.id} "
                                f"({e.candidate.name!r}, generation {e.candidate.generation})" for e in entries}
    parts = [header, imports + "\n", f"SOURCES = {json.dumps(sources, indent=4, ensure_ascii=False)}\n"]
    for rank, e in enumerate(entries, start=1):
        parts.append(f"\n# {rank}. {' '.join(e.candidate.name.split())}\n{e.source}")
    entries_text = "".join(f"    {name!r}: {name},\n" for name in names)
    parts.append(f"\nOBJECTIVES = {{\n{entries_text}}}\n")
    text = "\n".join(parts)
    # the module as written must pass the same verifier: importing it runs nothing of a candidate's
    problems = verify_module(text, task.contract.vocabulary)
    if problems:
        raise ArchiveError(f"the exported module is refused by the verifier: {'; '.join(problems)}")
    return text


def _import_line(name: str, module: str) -> str:
    if module == name:
        return f"import {name}"
    return f"import {module} as {name}"
