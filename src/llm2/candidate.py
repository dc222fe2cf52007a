"""Turn candidate source code into the contract's function (no checks here: see llm2.sandbox.static_checks)."""

from __future__ import annotations

import math
import types

import torch
import torch.nn.functional as F

from llm2.tasks.base import CandidateError, Contract, LossFn


def load_function(code: str, contract: Contract, filename: str = "<candidate>") -> LossFn:
    """Execute ``code`` in a fresh module namespace and return the single top-level function it defines.

    The namespace is pre-seeded with torch, F and math, which the contract promises the proposer.
    """
    module = types.ModuleType("llm2_candidate")
    module.__dict__.update({"torch": torch, "F": F, "math": math})
    try:
        compiled = compile(code, filename, "exec")
    except SyntaxError as exc:
        raise CandidateError(f"syntax error at line {exc.lineno}: {exc.msg}", stage="static") from None
    try:
        exec(compiled, module.__dict__)  # noqa: S102 - the point of this module; callers sandbox it
    except Exception as exc:  # noqa: BLE001 - any failure of candidate code is the candidate's
        raise CandidateError(f"executing the module failed: {type(exc).__name__}: {exc}", stage="static") from None
    functions = [v for v in module.__dict__.values() if isinstance(v, types.FunctionType) and v.__module__ == module.__name__]
    named = [f for f in functions if f.__name__ == contract.function_name]
    if named:
        return named[0]
    if len(functions) == 1:
        return functions[0]
    raise CandidateError(
        f"the code must define a function named {contract.function_name!r}"
        f" ({len(functions)} top-level functions found)",
        stage="static",
    )
