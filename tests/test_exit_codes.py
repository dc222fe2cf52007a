"""docs/cli.md's exit codes, command by command on bad input, and nothing half-made when a command refuses.

0 done, 1 the work failed, 2 bad usage or input, 3 stopped by a budget or the proposer, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from fake_openai_server import FakeOpenAIServer, completion, good_reply_json
from llm2.cli import main
from testkit import LLM2, llm2_here, wait_for_archive

TASK = f"{Path(__file__).with_name('example_task.py')}:RobustRegression"
GOOD = "def soft_abs(prediction, target):\n    d = prediction - target\n    return torch.sqrt(1 + d * d) - 1\n"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENAI_API_KEY": "test-key"}


def cli(*arguments: str):
    result = CliRunner().invoke(main, list(arguments))
    assert "Traceback" not in result.output, result.output
    return result


def one_line_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    return errors[0]


def write_replies(path: Path, *codes: str) -> Path:
    path.write_text("".join(json.dumps({"thought": "t", "name": f"idea{i}", "code": code}) + "\n"
                            for i, code in enumerate(codes)))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A short real discovery of the example task: one scored proposal, no kept weights."""
    folder = tmp_path_factory.mktemp("finished")
    replies = write_replies(folder / "replies.jsonl", GOOD)
    done = subprocess.run([*LLM2, "discover", "--task", TASK, "--proposer", "replay", "--replay", str(replies),
                           "--generations", "1", "--population", "1", "--seeds", "1", "--workers", "1",
                           "--run-dir", str(folder / "run")], capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "run"


def test_each_command_on_bad_input_exits_2_with_one_line(tmp_path):
    missing = str(tmp_path / "missing")
    cases = [("objectives", "--task", "nope"), ("tasks", "--task", "nope"), ("leaderboard", missing),
             ("report", missing), ("export", missing, "--out", str(tmp_path / "x.py")), ("heldout", missing),
             ("discover", "--resume", "--run-dir", missing), ("discover", "--task", "nope"),
             ("self-develop", "--resume", "--run-dir", missing), ("evaluate", "--objective", "nope"),
             ("evaluate", "--objective", "dpo", "--json", str(tmp_path / "missing" / "e.json")),
             ("plot", "objectives", "nope", "--out", str(tmp_path / "x.png")),
             ("plot", "results", str(tmp_path / "none.json"), "--out", str(tmp_path / "x.png"))]
    for arguments in cases:
        result = cli(*arguments)
        assert result.exit_code == 2, (arguments, result.output)
        one_line_error(result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no command made anything


def test_evaluate_exits_non_zero_when_a_candidate_is_broken_mismatched_or_rejected(tmp_path):
    files = {"broken": "def loss(prediction, target:\n    return 1\n",
             "mismatch": "def loss(prediction):\n    return prediction\n",
             "wrong_shape": "def loss(prediction, target):\n    return (prediction - target).sum()\n",
             "rejected": "import os\ndef loss(prediction, target):\n    return os.getpid()\n"}
    for name, code in files.items():
        (tmp_path / f"{name}.py").write_text(code)
    arguments = ["evaluate", "--task", TASK, "--seeds", "1", "--workers", "1", "--code"]
    # a file the static check refuses is bad input, refused before any work (2; the first in a real process, the
    # others in this one: each real one pays the torch imports again) ...
    for name, reason in (("broken", "syntax error"), ("mismatch", "no function takes"), ("rejected", "'os'")):
        done = (subprocess.run([*LLM2, *arguments, str(tmp_path / f"{name}.py")], capture_output=True, text=True,
                               timeout=300, env=ENV) if name == "broken"
                else llm2_here(*arguments, str(tmp_path / f"{name}.py")))
        assert done.returncode == 2, done.stderr
        assert "refused by the static checks" in done.stderr and reason in done.stderr, done.stderr
    # ... one that passes it but breaks the contract when it runs is work that failed (1)
    done = subprocess.run([*LLM2, *arguments, str(tmp_path / "wrong_shape.py")], capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert done.returncode == 1, done.stderr
    assert "1 of 1 evaluations did not succeed" in one_line_error(done.stderr)
    good = tmp_path / "good.py"
    good.write_text(GOOD)
    fine = subprocess.run([*LLM2, "evaluate", "--task", TASK, "--seeds", "1", "--workers", "1", "--code", str(good)],
                          capture_output=True, text=True, timeout=300, env=ENV)
    assert fine.returncode == 0, fine.stderr


def test_discover_with_an_unknown_proposer_leaves_no_run_directory(tmp_path):
    run_dir = tmp_path / "a" / "D"
    result = cli("discover", "--task", TASK, "--proposer", "NOSUCH", "--run-dir", str(run_dir))
    assert result.exit_code == 2 and "unknown proposer 'NOSUCH'" in one_line_error(result.output)
    replay = cli("discover", "--task", TASK, "--proposer", "replay", "--replay", str(tmp_path / "none.jsonl"),
                 "--run-dir", str(run_dir))
    assert replay.exit_code == 2 and "cannot read the replay file" in one_line_error(replay.output)
    assert list(tmp_path.iterdir()) == []


def test_a_proposer_that_runs_out_stops_the_run_with_3(tmp_path):
    replies = write_replies(tmp_path / "replies.jsonl", GOOD)
    # in this process: the real ones here (exit 0, exit 130) pay the torch imports already
    done = llm2_here("discover", "--task", TASK, "--proposer", "replay", "--replay", str(replies), "--generations",
                     "3", "--population", "1", "--seeds", "1", "--workers", "1", "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 3, done.stderr[-3000:]
    assert "replay exhausted" in done.stdout


def _as_from_a_terminal() -> None:
    """Ctrl-C's default, whatever the test process inherited: SIGINT handled and not blocked."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


def test_ctrl_c_ends_a_run_with_130_and_says_how_to_resume(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "output.txt"
    with FakeOpenAIServer([completion(good_reply_json(code=GOOD), delay_s=300)]) as server, \
            open(log, "w") as output_file:
        # The output goes to a file, not a pipe: the test waits for llm2 itself to end, not for every process that
        # may hold a copy of a pipe.
        process = subprocess.Popen([*LLM2, "discover", "--task", TASK, "--proposer", "openai", "--model",
                                    "fake-model", "--base-url", server.base_url, "--population", "1", "--seeds",
                                    "1", "--workers", "1", "--run-dir", str(run_dir)],
                                   stdout=output_file, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=_as_from_a_terminal, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            wait_for_archive(run_dir, process, lambda archive: bool(server.requests), "the proposer's request",
                             timeout_s=120)
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the job
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    output = log.read_text()
    assert process.returncode == 130, output[-3000:]
    assert f"llm2 discover --run-dir {run_dir} --resume" in output and "Traceback" not in output


def test_export_makes_no_folder_until_it_knows_it_will_succeed(finished_run, tmp_path):
    out = tmp_path / "a" / "b" / "c.py"
    refused = cli("export", str(finished_run), "--out", str(out), "--checkpoints")
    assert refused.exit_code == 2 and "kept no weights" in one_line_error(refused.output)
    (tmp_path / "file").write_text("")
    under_a_file = cli("export", str(finished_run), "--out", str(tmp_path / "file" / "c.py"))
    assert under_a_file.exit_code == 2 and "cannot write" in one_line_error(under_a_file.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    written = cli("export", str(finished_run), "--out", str(out))
    assert written.exit_code == 0, written.output
    assert out.is_file() and sorted(p.name for p in out.parent.iterdir()) == ["c.py"]
