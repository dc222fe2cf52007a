"""Write a run's best candidates as a plain Python module of objectives.

Each candidate becomes one self-contained top-level function named after it, with its thought, fitness and KL as
the docstring: module-level helpers, constants and imports of the candidate move inside the function, because
``llm2.objectives.load_objective_file`` compiles only the chosen function's own text. The module also imports as a
plain module and offers ``OBJECTIVES = {name: function}``.
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

import llm2
from llm2.archive.records import ArchiveError, CandidateRecord, RunInfo
from llm2.objectives import PREFERENCE_CONTRACT, objective_from_code, objective_source

# Imports the module header already provides; a candidate's own copy of them is dropped.
_HEADER_IMPORTS = {("torch", None), ("math", None), ("torch.nn.functional", "F")}
DOC_WIDTH = 100
_RESERVED = {"torch", "F", "math", "OBJECTIVES", "FORMULAS", "SOURCES"} | set(dir(builtins))


@dataclass(frozen=True)
class ExportedObjective:
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


def _is_header_import(statement: ast.stmt) -> bool:
    if isinstance(statement, ast.Import):
        return all((alias.name, alias.asname) in _HEADER_IMPORTS for alias in statement.names)
    if isinstance(statement, ast.ImportFrom):
        return statement.module == "torch.nn" and statement.level == 0 and \
            all((alias.name, alias.asname) == ("functional", "F") for alias in statement.names)
    return False


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def self_contained_function(code: str, function_name: str = PREFERENCE_CONTRACT.function_name) -> str:
    """The candidate as one function named ``function_name``, its helpers and constants moved inside it.

    The main function is the one named ``function_name``, else the only top-level function (as the loader picks).
    Its docstring is dropped (the export writes its own). Comments are lost: the code is rewritten through the AST.
    """
    tree = ast.parse(code)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    main = next((f for f in functions if f.name == function_name), functions[0] if len(functions) == 1 else None)
    if main is None:
        raise ArchiveError(f"the code defines no function {function_name!r} ({len(functions)} top-level functions)")
    moved = [s for s in tree.body if s is not main and not _is_header_import(s)]
    old_name = main.name
    main.name = function_name
    main.decorator_list = []
    main.body = moved + (_without_docstring(main.body) or [ast.Pass()])
    for node in ast.walk(main):  # calls to the function by its old name (recursion, aliases) follow the rename
        if isinstance(node, ast.Name) and node.id == old_name:
            node.id = function_name
    return ast.unparse(ast.fix_missing_locations(main)) + "\n"


def _docstring(candidate: CandidateRecord, run: RunInfo) -> str:
    def number(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    fitness = number(candidate.fitness, 4)
    if candidate.fitness_std is not None:
        fitness += f" ± {candidate.fitness_std:.4f}"
    beta = run.config.get("beta") if isinstance(run.config, dict) else None
    setting = f" at beta={beta}" if beta is not None else ""
    thought = candidate.thought.strip() or "(no thought recorded)"
    provenance = (f"llm2 candidate {candidate.name!r} (#{candidate.id}, generation {candidate.generation}) of run"
                  f" {run.run_id}, task {run.task}{setting}: fitness {fitness}, KL {number(candidate.kl, 3)}.")
    # Long reply lines are wrapped for reading; the thought's own line breaks are kept.
    lines = [wrapped for line in thought.splitlines() for wrapped in (textwrap.wrap(line, DOC_WIDTH) or [""])]
    return "\n".join([*lines, "", *textwrap.wrap(provenance, DOC_WIDTH)])


def export_objectives(candidates: list[CandidateRecord], run: RunInfo) -> list[ExportedObjective]:
    """Each candidate as a named, self-contained, verified function text (best first, names made unique)."""
    taken: set[str] = set()
    exported = []
    for candidate in candidates:
        identifier = function_identifier(candidate.name, taken)
        taken.add(identifier)
        try:
            code = self_contained_function(candidate.code)
            objective = objective_from_code(identifier, code, thought=_docstring(candidate, run))
        except (SyntaxError, ValueError, ArchiveError) as exc:
            raise ArchiveError(f"candidate #{candidate.id} ({candidate.name!r}) cannot be exported: {exc}") from None
        exported.append(ExportedObjective(identifier, candidate, objective_source(objective)))
    return exported


def module_text(exported: list[ExportedObjective], run: RunInfo, file_name: str = "objectives.py",
                exported_at: datetime.datetime | None = None) -> str:
    """The whole module: a header saying where it came from and how to use it, the functions, OBJECTIVES."""
    exported_at = exported_at or datetime.datetime.now().astimezone()
    module = file_name.removesuffix(".py")
    names = [e.function_name for e in exported]
    example = names[0] if names else "NAME"
    header = f'''"""Objectives discovered by llm2: the best {len(exported)} of run {run.run_id} (task {run.task}).

Exported {exported_at:%Y-%m-%d %H:%M %Z} by llm2 {llm2.__version__}; best first: {", ".join(names)}.
Each function follows the preference contract and returns per-pair losses of shape [batch]
(training minimises their mean):

    {example}(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta)

where the log-probabilities are summed over each completion's tokens.

With llm2:
    llm2 evaluate --objective-file {file_name}:{example} --beta 0.05
    from llm2.objectives import load_objective_file; objective = load_objective_file("{file_name}:{example}")

As a plain module (only torch needed):
    from {module} import OBJECTIVES
    losses = OBJECTIVES["{example}"](policy_chosen_logps, policy_rejected_logps,
                                    reference_chosen_logps, reference_rejected_logps, beta=0.05)

With TRL: DPOTrainer computes exactly these four tensors (chosen_logps, rejected_logps, ref_chosen_logps,
ref_rejected_logps) in its loss; subclass it and use {example}(...).mean() as the loss there.
"""
'''
    imports = "import math\n\nimport torch\nimport torch.nn.functional as F"
    sources = {e.function_name: f"discovered by llm2: run {run.run_id}, candidate #{e.candidate.id} "
                                f"({e.candidate.name!r}, generation {e.candidate.generation})" for e in exported}
    parts = [header, imports + "\n", f"SOURCES = {json.dumps(sources, indent=4, ensure_ascii=False)}\n"]
    for rank, e in enumerate(exported, start=1):
        parts.append(f"\n# {rank}. {' '.join(e.candidate.name.split())}\n{e.source}")
    entries = "".join(f"    {name!r}: {name},\n" for name in names)
    parts.append(f"\nOBJECTIVES = {{\n{entries}}}\n")
    return "\n".join(parts)
