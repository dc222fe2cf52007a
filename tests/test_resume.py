"""A discovery killed with SIGKILL mid-evaluation resumes with nothing lost and nothing evaluated twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from llm2.archive import Archive
from testkit import LLM2, assert_untouched, llm2_here, make_run, start_in_session, wait_for_archive


def discover(run_dir: Path, *extra: str) -> subprocess.Popen:
    return start_in_session([*LLM2, "discover", "--run-dir", str(run_dir), "--workers", "1", *extra])


def mid_evaluation(archive: Archive) -> bool:
    """At least two proposals are finished and another one is being evaluated."""
    proposals = [c for c in archive.candidates() if c.generation > 0]
    finished = [c for c in proposals if c.status != "pending"]
    return len(finished) >= 2 and any(c.status == "pending" for c in proposals)


def snapshot(run_dir: Path):
    archive = Archive.open(run_dir, readonly=True)
    try:
        return archive.candidates(), archive.messages()
    finally:
        archive.close()


def test_sigkill_mid_evaluation_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    # a sixth of the default's epochs: a run still long enough to be killed mid-evaluation
    options = ["--task", "classification", "-o", "epochs=10", "--generations", "3", "--population", "2", "--seeds",
               "1", "--seed", "5"]
    first = discover(run_dir, *options)
    wait_for_archive(run_dir, first, mid_evaluation, "the middle of an evaluation")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    before, messages_before = snapshot(run_dir)
    finished_before = [c for c in before if c.status not in ("pending",)]
    assert any(c.status == "pending" for c in before)

    second = discover(run_dir, "--resume")
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    after, messages_after = snapshot(run_dir)

    proposals = [c for c in after if c.generation > 0]
    assert len(proposals) == 6 and sorted(c.index for c in after) == list(range(len(after)))
    assert not any(c.status == "pending" for c in after)
    assert_untouched(finished_before, after)
    # the conversation continued where it was: the old log is a prefix of the new one, and it still alternates
    assert [(m.role, m.content) for m in messages_after[: len(messages_before)]] == [
        (m.role, m.content) for m in messages_before]
    roles = [m.role for m in messages_after]
    assert roles[0] == "system" and all(a != b for a, b in zip(roles[1:], roles[2:]))
    assert {m.candidate_id for m in messages_after if m.candidate_id} == {c.id for c in proposals}
    assert Archive.open(run_dir, readonly=True).run.status == "finished"


def test_sigkill_mid_rung_then_resume(tmp_path):
    """With --rungs on a task whose runs pause at the rungs: killed while a proposal's run is under way along them,
    the resumed run evaluates it afresh and nothing recorded again."""
    import json

    replies = tmp_path / "replies.jsonl"
    bodies = ["torch.log1p((prediction - target) ** 2)", "torch.clamp((prediction - target).abs(), max=1.0)",
              "(prediction - target).abs() ** 1.5", "torch.sqrt(1 + (prediction - target) ** 2) - 1",
              "torch.log(torch.cosh(prediction - target))", "(prediction - target) ** 4 / 100"]
    replies.write_text("".join(json.dumps({"thought": "t", "name": f"loss{i}", "code":
                                           f"def loss{i}(prediction, target):\n    return {body}\n"}) + "\n"
                               for i, body in enumerate(bodies)), encoding="utf-8")
    run_dir = tmp_path / "run"
    task = f"{Path(__file__).parent / 'pausing_task.py'}:SlowPausingRegression"
    first = discover(run_dir, "--task", task, "--proposer", "replay", "--replay", str(replies), "--rungs",
                     "--generations", "2", "--population", "2", "--seeds", "2")
    wait_for_archive(run_dir, first, mid_evaluation, "the middle of an evaluation")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    before, _ = snapshot(run_dir)
    finished_before = [c for c in before if c.status != "pending"]
    assert any(c.status == "pending" for c in before)

    second = discover(run_dir, "--resume")
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    after, _ = snapshot(run_dir)
    assert not any(c.status == "pending" for c in after)
    assert_untouched(finished_before, after)
    judged = [c for c in after if c.generation > 0 and c.status == "ok"]
    assert judged and all(c.metrics["promotions"] for c in judged)
    assert all(c.metrics["rung_seconds_saved"] > 0 for c in judged if c.fitness is not None)


# --- the proposer's side: replies and money survive a kill ------------------------------------------------------

def requests_of(run_dir: Path):
    with Archive.open(run_dir, readonly=True) as archive:
        return archive.requests()


# The proposer's side is the same for every task: these runs use the quick example task (docs/tasks.md).
EXAMPLE_TASK = f"{Path(__file__).parent / 'example_task.py'}:RobustRegression"


def example_code(name: str, scale: float) -> str:
    return f"def {name}(prediction, target):\n    return {scale} * (prediction - target).abs()\n"


def openai_discover(run_dir: Path, server, *extra: str) -> subprocess.Popen:
    resuming = "--resume" in extra
    task = () if resuming else ("--task", EXAMPLE_TASK)
    return discover(run_dir, *task, "--proposer", "openai", "--model", "fake-model", "--base-url", server.base_url,
                    "--api-key-env", "NO_SUCH_KEY", *(() if resuming else ("--seeds", "1")), *extra)


def test_kill_mid_reask_then_resume_reuses_the_reply_already_paid_for(tmp_path):
    from fake_openai_server import FakeOpenAIServer, completion, good_reply_json

    run_dir = tmp_path / "run"
    # the first reply is unusable; the re-ask's answer never comes before the kill
    first_script = [completion("I would rather talk about it.", prompt_tokens=100, completion_tokens=50),
                    completion(good_reply_json("never_seen", code=example_code("never_seen", 1.0)), delay_s=120)]
    with FakeOpenAIServer(first_script) as server:
        first = openai_discover(run_dir, server, "--generations", "1", "--population", "1",
                                "--price-prompt", "1", "--price-completion", "1")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(server.requests) < 2:
            assert first.poll() is None, first.stdout.read()
            time.sleep(0.1)
        assert len(server.requests) == 2  # the re-ask is on its way
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    recorded = requests_of(run_dir)
    assert [(r.attempt, r.reply, r.cost_usd) for r in recorded] == [(0, "I would rather talk about it.", 0.15)]

    with FakeOpenAIServer([completion(good_reply_json("second_thoughts",
                                                      code=example_code("second_thoughts", 2.0)))]) as server:
        second = openai_discover(run_dir, server, "--resume")
        output, _ = second.communicate(timeout=600)
        assert second.returncode == 0, output
        assert "resume: changed proposer_options" in output  # the new endpoint is said and recorded
        assert len(server.requests) == 1  # only the re-ask: the first reply was not bought again
        assert server.requests[0].body["messages"][-2]["content"] == "I would rather talk about it."
    with Archive.open(run_dir, readonly=True) as archive:
        proposal = next(c for c in archive.candidates() if c.generation > 0)
        assert proposal.name == "second_thoughts" and proposal.status == "ok"
        assert [r.candidate_id for r in archive.requests()] == [proposal.id, proposal.id]
        assert proposal.prompt_tokens == 110 and any(e.startswith("reask:") for e in proposal.reply_events)
        assert archive.run_events()[-1].detail["changed"]["proposer_options"]["to"]["base_url"] == server.base_url
        turn = [m for m in archive.messages() if m.candidate_id == proposal.id]
        assert [m.role for m in turn] == ["assistant", "user", "assistant", "user"]  # logged once, whole


def test_the_spending_cap_holds_across_resumes(tmp_path):
    from fake_openai_server import FakeOpenAIServer, completion, good_reply_json

    run_dir = tmp_path / "run"
    costly = [completion(good_reply_json(f"idea_{i}", code=example_code(f"idea_{i}", i + 1.0)),
                         prompt_tokens=1000, completion_tokens=0) for i in range(6)]
    options = ("--generations", "6", "--population", "1", "--price-prompt", "0.1", "--max-cost", "0.25",
               "--max-tokens", "1")
    with FakeOpenAIServer(costly) as server:
        first = openai_discover(run_dir, server, *options)
        output, _ = first.communicate(timeout=600)
        assert first.returncode == 3, output  # stopped cleanly by the cap
        assert "spending cap" in output
        spent_first = sum(r.cost_usd for r in requests_of(run_dir))
        assert 0 < spent_first <= 0.25
        asked_first = len(server.requests)
    with FakeOpenAIServer(costly[asked_first:]) as server:
        second = openai_discover(run_dir, server, "--resume")
        output, _ = second.communicate(timeout=600)
        assert second.returncode == 3 and "spending cap" in output, output
        assert len(server.requests) == 0  # the spend was restored: nothing more was bought
    assert sum(r.cost_usd for r in requests_of(run_dir)) == spent_first


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*LLM2, *args], capture_output=True, text=True, timeout=timeout)


def test_bad_command_lines_give_one_line_errors_and_leave_nothing_behind(tmp_path):
    cases = [
        (("discover", "--resume", "--run-dir", str(tmp_path / "missing")), "no llm2 archive"),
        (("discover", "--task", "nope", "--run-dir", str(tmp_path / "nope")), "unknown task 'nope'"),
        (("discover", "--generations", "0"), "0 is not in the range x>=1"),
        (("discover", "--proposer", "openai", "--model", "m", "--max-cost", "1", "--run-dir",
          str(tmp_path / "cap")), "--max-cost needs --price-prompt"),
        (("discover", "--timeout", "-1"), "-1.0 is not in the range x>0"),
        (("discover", "-o", "betta=1", "--run-dir", str(tmp_path / "opt")), "unknown option 'betta'"),
        (("evaluate", "--objective", "nope"), "unknown objective 'nope'"),
        (("evaluate", "--objective", "dpo", "-o", "beta=-1"), "beta must be positive"),
        (("evaluate", "--objective", "dpo", "--timeout", "-1"), "-1.0 is not in the range x>0"),
        (("leaderboard", str(tmp_path)), "no llm2 archive"),
    ]
    (tmp_path / "empty").mkdir()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "archive.sqlite").write_bytes(b"not a database at all" * 100)
    cases += [(("discover", "--resume", "--run-dir", str(tmp_path / "empty")), "no llm2 archive"),
              (("discover", "--resume", "--run-dir", str(garbage)), "not a readable llm2 archive"),
              (("leaderboard", str(garbage)), "not a readable llm2 archive")]
    for number, (args, expected) in enumerate(cases):
        done = run_cli(*args) if number == 0 else llm2_here(*args)  # one in a real process, the rest in this one
        assert done.returncode != 0, (args, done.stdout)
        assert expected in done.stderr + done.stdout, (args, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
    for name in ("nope", "cap", "opt"):
        assert not (tmp_path / name / "archive.sqlite").exists()  # no half-made run blocks the directory


def test_a_corrupt_recorded_config_is_a_clear_error(tmp_path):
    import sqlite3

    run = make_run(run_id="r", config={"generations": "many", "nonsense": 1}, seeds={}, versions={}, started_at=1.0,
                   status="stopped")
    Archive.create(tmp_path, run).close()
    for args in (("leaderboard", str(tmp_path)), ("discover", "--resume", "--run-dir", str(tmp_path)),
                 ("export", str(tmp_path), "--out", str(tmp_path / "x.py")), ("heldout", str(tmp_path))):
        done = run_cli(*args) if args[0] == "discover" else llm2_here(*args)  # one in a real process
        assert "Traceback" not in done.stderr, (args, done.stderr)
        if args[0] != "leaderboard":
            assert done.returncode != 0 and ("config" in done.stderr or "no successfully" in done.stderr), \
                (args, done.stderr)
    assert sqlite3.connect(tmp_path / "archive.sqlite").execute("SELECT status FROM run").fetchone()[0] == "stopped"
