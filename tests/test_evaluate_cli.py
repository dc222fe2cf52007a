"""``llm2 evaluate``: numbers for good objectives, clear statuses for bad ones, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

LLM2 = [sys.executable, "-m", "llm2.cli"]

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
    files = {"wrong_shape": WRONG_SHAPE, "nan_loss": NAN_LOSS, "no_function": NO_FUNCTION}
    for name, code in files.items():
        (tmp_path / f"{name}.py").write_text(code)
    out = tmp_path / "eval.json"
    args = ["evaluate", "--objective", "dpo", "--objective", "hinge", "--objective", "no_such_loss",
            "--seeds", "2", "--beta", "0.05", "--beta", "0.5", "--json", str(out),
            "--code", str(tmp_path / "missing.py")]
    for name in files:
        args += ["--code", str(tmp_path / f"{name}.py")]
    result = subprocess.run([*LLM2, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    payload = json.loads(out.read_text())
    rows = {(r["objective"], r["beta"]): r for r in payload["results"]}
    assert payload["task"] == "preference-synthetic"
    reference = payload["reference"]["fitness_mean"]
    for beta in (0.05, 0.5):
        dpo = rows[("dpo", beta)]
        assert dpo["status"] == "ok" and dpo["seeds"] == 2 and dpo["error"] is None
        assert dpo["fitness_mean"] > reference and dpo["fitness_std"] >= 0 and dpo["kl_mean"] > 0
        assert dpo["seconds_per_eval"] > 0
    # smaller β lets the policy move further from the reference
    assert rows[("dpo", 0.05)]["kl_mean"] > rows[("dpo", 0.5)]["kl_mean"]
    assert rows[("no_such_loss", 0.05)]["status"] == "invalid"
    assert "unknown objective" in rows[("no_such_loss", 0.05)]["error"]
    assert "cannot read" in rows[("missing", 0.05)]["error"]
    assert rows[("wrong_shape", 0.05)]["status"] in ("invalid", "failed")
    assert "shape" in rows[("wrong_shape", 0.05)]["error"]
    assert "finite" in rows[("nan_loss", 0.05)]["error"] or "nan" in rows[("nan_loss", 0.05)]["error"].lower()
    assert rows[("no_function", 0.05)]["status"] == "invalid"
    assert "function" in rows[("no_function", 0.05)]["error"]
    # the table names every objective and the reference row
    for name in ("dpo", "hinge", "no_such_loss", "wrong_shape", "reference"):
        assert name in result.stdout


def test_evaluate_needs_an_objective():
    result = subprocess.run([*LLM2, "evaluate"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "at least one" in result.stderr
