"""Issue 19's attacks on the static check, on export and file loading, and on the text a candidate writes — each
failed on main before the allow-list vocabulary, the import-time verifier and the archive's text cleaning:

- attribute chains through modules torch and numpy re-export (tests/hostile/attribute_chain_exec.py,
  functional_numpy_reader.py) and payloads that run at definition time (default_argument_payload.py,
  annotation_payload.py) are refused statically (and by tests/test_hostile_corpus.py through the real executor);
- ``llm2 export`` refuses a candidate whose code would run on import, writes nothing, and what it does write runs
  nothing when imported; ``FILE.py:NAME`` loading (evaluate, TRL) refuses such a file before importing it;
- a lone surrogate, escape sequences and rich markup in a proposer's or candidate's text neither stop a discovery
  nor its resume, and the leaderboard and the report show them escaped.
"""

from __future__ import annotations

import importlib
import json
import types
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from llm2.archive import Archive
from llm2.cli import main
from llm2.sandbox.static_checks import static_check, static_error, verify_module
from llm2.tasks import load_task
from llm2.task_api.base import Contract
from llm2.task_api.card import TaskCard
from llm2.tasks.preference.contract import PREFERENCE_CONTRACT
from llm2.task_api.vocabulary import NUMPY_VOCABULARY, TENSOR_VOCABULARY
from test_hostile_corpus import load_corpus
from testkit import LLM2, import_file, make_run

NEW_PROGRAMS = ("attribute_chain_exec", "functional_numpy_reader", "default_argument_payload", "annotation_payload")
SIGNATURE = ("def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps,"
             " beta):\n")
DPO_BODY = ("    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - "
            "reference_rejected_logps))\n    return -F.logsigmoid(x)\n")
EXAMPLE_TASK = f"{Path(__file__).parent / 'example_task.py'}:RobustRegression"


# -- the static check: an allow-list --------------------------------------------------------------------------------

def test_the_chains_are_real_on_this_torch():
    """What the hostile programs walk exists: the builtins module (and its exec) and numpy's file readers."""
    import builtins

    import numpy
    import torch.nn.functional as F

    assert torch.textwrap.re.enum.bltns is builtins and torch.textwrap.re.enum.bltns.exec is builtins.exec
    assert F.np is numpy and F.np.fromfile is numpy.fromfile and callable(F.np.loadtxt)


@pytest.mark.parametrize("name", NEW_PROGRAMS)
def test_new_hostile_programs_are_refused_statically_with_their_reason(name):
    program = {p.name: p for p in load_corpus({"@CANARY@": "/nowhere", "@PORT@": "1", "@WORLD@": "/nowhere"})}[name]
    problems = static_check(program.code, PREFERENCE_CONTRACT)
    assert problems and program.expect.stages == ("static",)
    assert any(text in static_error(problems).lower() for text in program.expect.texts), problems


@pytest.mark.parametrize("body, expected", [
    ("    return torch.linalg.inv(policy_chosen_logps)\n", "accesses 'torch.linalg'; the attribute 'linalg'"),
    ("    return torch.nn.Module()\n", "accesses 'torch.nn'"),
    ("    m = torch\n    return m.sigmoid(beta)\n", "uses the module 'torch' as a value"),
    ("    return F.np.lib.npyio.loadtxt('x')\n", "accesses 'F.np'"),
    ("    return math.sys.modules\n", "accesses 'math.sys'"),
    ("    return policy_chosen_logps.grad_fn.next_functions\n", "the attribute 'grad_fn' is not allowed"),
    ("    policy_chosen_logps.register_hook(print)\n    return beta\n", "the attribute 'register_hook'"),
    ("    return policy_chosen_logps.numpy().tofile('x')\n", "the attribute 'numpy' is not allowed"),
    ("    return [open for open in open('x')]\n", "uses 'open'"),  # the first iterable is read outside
    ("    return vars(policy_chosen_logps)\n", "uses 'vars'"),
    ("    return type(beta).mro()\n", "uses 'type'"),
    ("    yield beta\n", "a yield (a generator function) is not allowed"),
    ("    f = lambda y=print('x'): y\n    return beta\n", "a lambda has a default argument"),
    ("    def helper(y) -> print('x'):\n        return y\n    return beta\n", "an annotation that computes"),
])
def test_names_outside_the_vocabulary_are_refused_with_their_line(body, expected):
    problems = static_check(SIGNATURE + body, PREFERENCE_CONTRACT)
    assert any(expected in p and p.startswith(("line 2:", "line 3:")) for p in problems), problems


@pytest.mark.parametrize("head, body", [
    ("", "    return torch.linalg.vector_norm(policy_chosen_logps.unsqueeze(1), dim=1) * beta\n"),
    ("", "    eps = torch.finfo(policy_chosen_logps.dtype).eps\n    return policy_chosen_logps * eps\n"),
    ("", "    return policy_chosen_logps.float() if torch.float32.is_floating_point else beta\n"),
    ("import torch.nn.functional\n", "    return torch.nn.functional.relu(policy_chosen_logps)\n"),
    ("from torch import sigmoid as s\n", "    return s(policy_chosen_logps)\n"),
    ("TAU = -0.05\nNAMES = ('a', 'b')\n", "    return policy_chosen_logps * TAU * len(NAMES)\n"),
    ("", "    x: torch.Tensor = policy_chosen_logps\n    return x\n"),
])
def test_what_the_vocabulary_lists_passes(head, body):
    assert static_check(head + SIGNATURE + body, PREFERENCE_CONTRACT) == []


def test_a_module_level_name_is_the_builtin_until_it_is_bound():
    """At import, ``X = open`` reads the builtin even if a later definition binds ``open``: refused."""
    code = "X = open\n\n\ndef open(a):\n    return a\n\n\n" + SIGNATURE + "    return X(beta)\n"
    assert any("line 1: uses 'open'" in p for p in static_check(code, PREFERENCE_CONTRACT))


def test_a_task_declares_numpy_and_only_numpy_s_listed_functions_come_with_it():
    contract = Contract(arguments=("state",), example_name="reward", description="", vocabulary=NUMPY_VOCABULARY)
    assert static_check("import numpy as np\n\n\ndef reward(state):\n    return np.tanh(state).mean()\n",
                        contract) == []
    for call, bad in (("np.load('x')", "'np.load'"), ("np.lib.npyio.loadtxt('x')", "'np.lib'"),
                      ("np.random.seed(0)", "'np.random'"), ("np.ctypeslib", "'np.ctypeslib'")):
        problems = static_check(f"def reward(state):\n    return {call}\n", contract)
        assert any(bad in p for p in problems), problems
    # the torch tasks' vocabulary has no numpy at all
    assert "numpy" not in TENSOR_VOCABULARY.modules
    assert static_check(SIGNATURE + "    import numpy\n    return beta\n", PREFERENCE_CONTRACT)


def test_every_vocabulary_name_exists_and_none_is_a_module():
    """No listed attribute leads to a module: the allow-list has no chain to walk."""
    import builtins

    for module_name, attributes in [*TENSOR_VOCABULARY.modules.items(), *NUMPY_VOCABULARY.modules.items()]:
        module = importlib.import_module(module_name)
        for dotted in attributes:
            value = module
            for part in dotted.split("."):
                value = getattr(value, part)
            assert not isinstance(value, types.ModuleType), f"{module_name}.{dotted}"
            assert not dotted.startswith("_")
    assert all(hasattr(builtins, name) for name in TENSOR_VOCABULARY.builtins)
    assert not {"open", "eval", "exec", "compile", "getattr", "vars", "globals", "type", "__import__"} \
        & TENSOR_VOCABULARY.builtins
    assert not {"grad_fn", "register_hook", "backward", "numpy", "storage", "untyped_storage", "data_ptr",
                "tofile", "gi_frame", "f_back"} & TENSOR_VOCABULARY.methods


# -- export and file loading: nothing runs at import ---------------------------------------------------------------

CARD = TaskCard.of(load_task("preference-synthetic")).to_dict()
CONFIG = {"task": "preference-synthetic", "task_settings": {"beta": 0.05}}


def _payloads(marker: Path) -> dict[str, str]:
    touch = f"open({str(marker)!r}, 'w').close()"
    return {
        "default argument": SIGNATURE.replace("beta):", f"beta=({touch}, 0.1)[1]):") + DPO_BODY,
        "decorator": f"def mark(f):\n    {touch}\n    return f\n\n\n@mark\n" + SIGNATURE + DPO_BODY,
        "annotation": SIGNATURE.replace("beta):", f"beta: ({touch}, float)[1]):") + DPO_BODY,
        "top-level": f"{touch}\n\n\n" + SIGNATURE + DPO_BODY,
        "class": f"class Box:\n    {touch}\n\n\n" + SIGNATURE + DPO_BODY,
    }


def _archive_with(run_dir: Path, candidates: list[tuple[str, str, str]]) -> None:
    """An archive holding scored candidates (name, thought, code), as an older llm2 might have left them."""
    run = make_run(run_id="x", config=CONFIG, seeds={}, versions={}, started_at=1.0, status="finished")
    with Archive.create(run_dir, run, CARD) as archive:
        for position, (name, thought, code) in enumerate(candidates):
            record = archive.add_candidate(generation=1, proposer="p", thought=thought, name=name, code=code)
            archive.finish_candidate(record.id, status="ok", stage="done", error=None, fitness=0.9 - position / 100,
                                     fitness_std=0.0, metrics={}, seconds=1.0, feedback="fb")


@pytest.mark.parametrize("kind", ["default argument", "decorator", "annotation", "top-level", "class"])
def test_export_refuses_code_that_runs_on_import_and_writes_nothing(tmp_path, kind):
    marker = tmp_path / "ran"
    _archive_with(tmp_path / "run", [("payload", "t", _payloads(marker)[kind])])
    out = tmp_path / "best.py"
    result = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--out", str(out)])
    assert result.exit_code == 1 and "cannot be exported" in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not marker.exists()


def test_importing_an_export_runs_nothing_whatever_the_candidate_wrote_as_text(tmp_path):
    """Thoughts and names that try to leave the docstring or the comment they are written into."""
    marker = tmp_path / "ran"
    touch = f"open({str(marker)!r}, 'w').close()"
    thought = f'end """\n{touch}\n""" and \'\'\'\n{touch}\n\'\'\' \\\n{touch} \ud800 \x1b[31m'
    name = f"x\n{touch}\r{touch}\x0c{touch}\u2028{touch}"
    _archive_with(tmp_path / "run", [(name, thought, SIGNATURE + DPO_BODY)])
    out = tmp_path / "best.py"
    result = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert verify_module(text, PREFERENCE_CONTRACT.vocabulary) == [] and "\x1b" not in text
    module = import_file(out, "exported_hostile_text")
    assert not marker.exists() and len(module.OBJECTIVES) == 1


def test_file_loading_refuses_code_that_runs_on_import(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "best.py"
    path.write_text(_payloads(marker)["default argument"], encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", "--task", "preference-synthetic", "--objective-file", f"{path}:loss"])
    assert result.exit_code == 2 and "refused by the static checks" in result.output and "default argument" in \
        result.output, result.output
    result = runner.invoke(main, ["evaluate", "--task", "preference-synthetic", "--code", str(path)])
    assert result.exit_code == 2 and "refused by the static checks" in result.output, result.output

    from llm2.integrations.trl import resolve_objective  # imports the file only after the verifier passed it

    with pytest.raises(ValueError, match="refused, not imported: line 1: the function 'loss' has a default"):
        resolve_objective(f"{path}:loss")
    assert not marker.exists()


# -- untrusted text: stored clean, shown escaped --------------------------------------------------------------------

HOSTILE_THOUGHT = "lone \ud800 surrogate \x1b[2J\x1b]0;title\x07 <script>alert(1)</script> [bold red]markup[/]"
RAISING = ("def shouty(prediction, target):\n"
           "    raise ValueError('[bold red]not a loss[/bold red] \\x1b[31m')\n")


def test_hostile_text_neither_stops_a_discovery_nor_its_resume_and_is_shown_escaped(tmp_path):
    import subprocess

    replies = tmp_path / "replies.jsonl"
    code = "def steady(prediction, target):\n    return (prediction - target).abs() * 1.5\n"
    replies.write_text("\n".join(json.dumps(r) for r in [
        {"thought": HOSTILE_THOUGHT, "name": "steady\ud800", "code": code},
        {"thought": "raises \ud800", "name": "[red]shouty[/red]", "code": RAISING}]) + "\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    common = ["--generations", "1", "--population", "2", "--seeds", "1", "--workers", "1"]
    first = subprocess.run([*LLM2, "discover", "--run-dir", str(run_dir), "--task", EXAMPLE_TASK, "--proposer",
                            "replay", "--replay", str(replies), *common], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run([*LLM2, "discover", "--run-dir", str(run_dir), "--resume", "--generations", "2"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "\x1b" not in first.stdout + first.stderr + again.stdout + again.stderr

    with Archive.open(run_dir, readonly=True) as archive:
        proposals = [c for c in archive.candidates() if c.generation > 0]
    steady = next(c for c in proposals if c.thought.startswith("lone"))
    assert steady.status == "ok" and "\ufffd" in steady.thought and "\x1b" not in steady.thought
    assert "\x07" not in steady.thought and "[2J" in steady.thought  # the control characters alone are removed
    raising = next(c for c in proposals if c.thought.startswith("raises"))
    assert raising.status == "invalid" and "[bold red]not a loss[/bold red]" in raising.error

    shown = CliRunner().invoke(main, ["leaderboard", str(run_dir), "--all"])
    assert shown.exit_code == 0 and "\x1b" not in shown.output
    assert "[bold red]not a" in shown.output and "loss[/bold red]" in shown.output, shown.output  # shown, not styled

    from llm2.report.build import build_report

    page = build_report(run_dir).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page


def test_markup_in_a_stored_name_is_printed_not_interpreted(tmp_path):
    _archive_with(tmp_path / "run", [("[bold red]styled[/bold red]", "t", SIGNATURE + DPO_BODY)])
    result = CliRunner().invoke(main, ["leaderboard", str(tmp_path / "run")])
    assert result.exit_code == 0 and "[bold red]styled[/bold red]" in result.output, result.output


def test_a_reply_that_cannot_be_stored_is_recorded_as_malformed(tmp_path):
    with Archive.create(tmp_path / "run", make_run()) as archive:
        record = archive.record_request(index=0, attempt=0, request={"messages": []}, reply="{}\ud800",
                                        prompt_tokens=2 ** 70)
        assert record.reply is None and record.error.startswith("malformed reply, not stored: OverflowError")
        clean = archive.record_request(index=1, attempt=0, request={"m": "\ud800"}, reply="ok \x1b[31m\ud800")
        assert clean.reply == "ok [31m\ufffd" and clean.request == {"m": "\ufffd"}
        assert len(archive.requests()) == 2
