"""Call trusted task code on candidate functions inside a confined process, for figures and the like.

``call_confined`` starts ``python -m llm2.sandbox.confined_call`` with a stripped environment in an empty scratch
directory. That process imports the trusted entry function named by the task, applies every sandbox layer (the
same fail-closed rule as evaluations), then for each (name, code) item runs the static checks, loads the code and
calls ``entry(fn, payload)``; each answer must be JSON. Only JSON comes back; nothing of the candidate ever runs in
the caller. A timeout or a crash fails every item with the reason.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from llm2.task_api.optional import optional
from llm2.temp_dirs import temporary_dir

MAX_ANSWER_BYTES = 16 << 20


@dataclass(frozen=True)
class CallResult:
    name: str
    value: Any = None  # the entry function's JSON answer
    error: str | None = None


def call_confined(task_spec: str, entry: str, items: Sequence[tuple[str, str]], payload: dict,
                  timeout_s: float = 60.0, allow_missing: Sequence[str] = ()) -> list[CallResult]:
    """``entry`` ("module:function", trusted) called on each item's function in a confined child process."""
    from llm2.sandbox.environment import stripped_environment

    request = {"task": task_spec, "entry": entry, "items": [list(item) for item in items], "payload": payload,
               "timeout_s": timeout_s, "allow_missing": list(allow_missing)}
    try:
        with temporary_dir("llm2-call-") as scratch:
            done = subprocess.run([sys.executable, "-m", "llm2.sandbox.confined_call"], input=json.dumps(request),
                                  capture_output=True, text=True, timeout=timeout_s + 30,
                                  env=stripped_environment(), cwd=scratch)
    except subprocess.TimeoutExpired:
        return [CallResult(name, error=f"timed out after {timeout_s:g} s") for name, _ in items]
    if done.returncode != 0 or len(done.stdout) > MAX_ANSWER_BYTES:
        from llm2.sandbox.limits import SandboxLimits, last_line_of, signal_reason

        last_line = last_line_of(done.stderr)
        why = signal_reason(-done.returncode, SandboxLimits(timeout_s=timeout_s)) if done.returncode < 0 else \
            f"it exited with code {done.returncode}: {last_line}"
        return [CallResult(name, error=f"the confined process ended early: {why}") for name, _ in items]
    try:
        answers = json.loads(done.stdout)
        return [CallResult(str(a["name"]), a.get("value"), a.get("error")) for a in answers]
    except (ValueError, KeyError, TypeError) as exc:
        return [CallResult(name, error=f"unreadable answer from the confined process ({exc})") for name, _ in items]


def main() -> None:
    """Child side: JSON request on stdin, a JSON list of {name, value | error} on stdout."""
    import resource

    import torch

    from llm2.sandbox.limits import SandboxLimits, confine, read_roots
    from llm2.sandbox.loader import load_function
    from llm2.sandbox.static_checks import static_check, static_error
    from llm2.task_api.registry import load_task

    torch.set_num_threads(1)
    request = json.load(sys.stdin)
    task = load_task(request["task"])
    contract = task.contract
    module_name, _, function_name = request["entry"].partition(":")
    entry = getattr(importlib.import_module(module_name), function_name)
    answer_fd = sys.stdout
    sys.stdout = sys.stderr  # whatever the candidate prints must not corrupt the answer
    limits = SandboxLimits(timeout_s=request["timeout_s"])
    # not for the answer (a pipe, bounded by the parent): a cap on files that stays where the user opts out of the
    # rlimits layer; where that layer applies, confine lowers it to limits.output_bytes
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_ANSWER_BYTES, MAX_ANSWER_BYTES))
    hidden = optional(task, "hidden_paths")()
    confine(Path.cwd(), limits, read_roots(exclude=hidden), frozenset(request["allow_missing"]), hidden)
    answers = []
    for name, code in request["items"]:
        problems = static_check(code, contract)
        if problems:
            answers.append({"name": name, "error": static_error(problems)})
            continue
        try:
            fn = load_function(code, contract, filename=f"<candidate {name}>")
            answers.append({"name": name, "value": entry(fn, request["payload"])})
        except Exception as exc:  # noqa: BLE001 - a broken candidate is reported, with its reason
            answers.append({"name": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
    # NaN is not JSON; the parent's json.loads accepts Python's NaN token, which json.dumps writes by default.
    answer_fd.write(json.dumps(answers))
    answer_fd.flush()


if __name__ == "__main__":
    main()
