"""Turn candidate source code into the contract's function. Only ever called inside a confined child.

The namespace is pre-seeded with the modules the contract promises (``Vocabulary.preloaded``); the entry function is
the one top-level function whose arguments are the contract's, whatever its name (the static checks have already
refused code where that is not exactly one).
"""

from __future__ import annotations

import ast
import importlib
import types
from typing import Any, Callable

from llm2.sandbox.static_checks import find_entry_function
from llm2.task_api.base import CandidateError, Contract

def load_function(code: str, contract: Contract, filename: str = "<candidate>") -> Callable[..., Any]:
    """Execute ``code`` in a fresh module namespace and return its entry function."""
    try:
        tree = ast.parse(code, filename=filename)
    except SyntaxError as exc:
        raise CandidateError(f"syntax error at line {exc.lineno}: {exc.msg}", stage="static") from None
    entry = find_entry_function(tree, contract.arguments)
    if isinstance(entry, str):
        raise CandidateError(entry, stage="static")
    module = types.ModuleType("llm2_candidate")
    module.__dict__.update({name: importlib.import_module(module_name)
                            for name, module_name in contract.vocabulary.preloaded.items()})
    try:
        exec(compile(tree, filename, "exec"), module.__dict__)  # noqa: S102 - the point of this module (in the child)
    except Exception as exc:  # noqa: BLE001 - any failure of candidate code is the candidate's
        raise CandidateError(f"executing the module failed: {type(exc).__name__}: {exc}", stage="static") from None
    function = module.__dict__.get(entry.name)
    if not isinstance(function, types.FunctionType):
        raise CandidateError(f"{entry.name!r} is no longer a function once the module has run", stage="static")
    return function
