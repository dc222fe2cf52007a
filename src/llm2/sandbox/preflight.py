"""Before a run spends anything: can this machine confine a candidate? ``python -m llm2.sandbox.preflight``.

A fresh process (torch-free, so it costs a fraction of a second) applies every layer to itself, as a candidate's
process would, and reports which took. A missing layer that the user did not explicitly let go stops the command
with the same one-line reason every candidate would otherwise be refused with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from llm2.sandbox.limits import SandboxUnavailable, last_line_of
from llm2.temp_dirs import temporary_dir

__all__ = ["SandboxUnavailable", "preflight"]


def preflight(allow_missing: frozenset[str] = frozenset(), timeout_s: float = 60.0) -> tuple[str, ...]:
    """The layers that take on this machine; SandboxUnavailable when a required one does not."""
    from llm2.sandbox.environment import stripped_environment

    request = json.dumps({"allow_missing": sorted(allow_missing)})
    with temporary_dir("llm2-preflight-") as scratch:
        Path(scratch).chmod(0o777)
        try:
            done = subprocess.run([sys.executable, "-m", "llm2.sandbox.preflight", scratch], input=request,
                                  capture_output=True, text=True, timeout=timeout_s, env=stripped_environment())
        except subprocess.TimeoutExpired:
            raise SandboxUnavailable("confine", f"the sandbox check did not finish within {timeout_s:g} s") from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise SandboxUnavailable("confine", f"the sandbox check failed: {last_line_of(done.stderr)}") from None
    if answer.get("error"):
        raise SandboxUnavailable(answer.get("layer", "confine"), answer["error"])
    return tuple(answer["applied"])


def main() -> None:
    from llm2.sandbox.limits import SandboxLimits, confine, read_roots

    request = json.load(sys.stdin)
    answer = sys.stdout
    try:
        defences = confine(Path(sys.argv[1]), SandboxLimits(timeout_s=10.0), read_roots(),
                           frozenset(request["allow_missing"]))
        answer.write(json.dumps({"applied": list(defences.applied)}))
    except SandboxUnavailable as exc:
        answer.write(json.dumps({"error": exc.reason, "layer": exc.layer}))
    answer.flush()


if __name__ == "__main__":
    main()
