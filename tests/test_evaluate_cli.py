"""``llm2 evaluate``: numbers for good objectives, clear statuses for bad ones, never a traceback."""

from __future__ import annotations

import json
import subprocess

from testkit import LLM2, llm2_here
from tiny_preference_task import TINY_TASK

WRONG_SHAPE = (
    "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
    "    return (policy_chosen_logps - policy_rejected_logps).mean()\n"
)
NAN_LOSS = (
    "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
    "    return policy_chosen_logps * float('nan')\n"
)
NO_FUNCTION = "x = 1\n"


def test_evaluate_good_and_bad_objectives(tmp_path):
    files = {"wrong_shape": WRONG_SHAPE, "nan_loss": NAN_LOSS}
    for name, code in files.items():
        (tmp_path / f"{name}.py").write_text(code)
    out = tmp_path / "eval.json"
    # the small preference world: the command's work, not the default world's numbers (the judge traces no frontier)
    args = ["evaluate", "--task", TINY_TASK, "--objective", "dpo", "--objective", "hinge", "--seeds", "2",
            "-o", "beta=0.05", "-o", "beta=0.5", "-o", "fitness=judge", "--json", str(out)]
    for name in files:
        args += ["--code", str(tmp_path / f"{name}.py")]
    result = subprocess.run([*LLM2, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr  # two objectives failed: the work failed (docs/cli.md)
    assert "4 of 8 evaluations did not succeed" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    payload = json.loads(out.read_text())
    rows = {(r["objective"], r["setting"]["beta"]): r for r in payload["results"]}
    assert payload["task"] == "preference-synthetic" and payload["fitness"]
    reference = payload["references"][0]["fitness_mean"]
    for beta in (0.05, 0.5):
        dpo = rows[("dpo", beta)]
        assert dpo["status"] == "ok" and dpo["seeds"] == 2 and dpo["error"] is None
        assert dpo["fitness_mean"] > reference and dpo["fitness_std"] >= 0 and dpo["metrics"]["kl"]["mean"] > 0
        assert dpo["seconds_per_eval"] > 0 and "seccomp" in dpo["sandbox"]
    # smaller β lets the policy move further from the reference
    assert rows[("dpo", 0.05)]["metrics"]["kl"]["mean"] > rows[("dpo", 0.5)]["metrics"]["kl"]["mean"]
    assert rows[("wrong_shape", 0.05)]["status"] in ("invalid", "failed")
    assert "shape" in rows[("wrong_shape", 0.05)]["error"]
    assert "finite" in rows[("nan_loss", 0.05)]["error"] or "nan" in rows[("nan_loss", 0.05)]["error"].lower()
    # the table names every objective, both settings and the starting point
    for name in ("dpo", "hinge", "wrong_shape", "starting point", "β = 0.5"):
        assert name in result.stdout


def test_evaluate_refuses_what_it_cannot_read_before_any_work(tmp_path):
    (tmp_path / "no_function.py").write_text(NO_FUNCTION)
    cases = [(["--objective", "no_such_loss"], "unknown objective 'no_such_loss'"),
             (["--code", str(tmp_path / "missing.py")], "cannot read"),
             (["--objective-file", f"{tmp_path / 'no_function.py'}:loss"], "has no function 'loss'"),
             (["--objective", "dpo", "-o", "beta=0.1", "-o", "betta=1"], "unknown option 'betta'"),
             ([], "at least one")]
    for number, (extra, message) in enumerate(cases):  # one in a real process, the rest in this one
        result = (subprocess.run([*LLM2, "evaluate", *extra], capture_output=True, text=True, timeout=120)
                  if number == 0 else llm2_here("evaluate", *extra))
        assert result.returncode == 2, (extra, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (extra, result.stderr)
