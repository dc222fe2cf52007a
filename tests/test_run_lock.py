"""One writer per run directory, with real processes: a second writer is refused (exit code 2, naming the holder's
pid) while readers go on; the kernel drops the lock when the writer is killed, so the run can be resumed."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from fake_openai_server import FakeOpenAIServer, completion, good_reply_json
from testkit import LLM2, llm2_here, start_in_session, wait_for_archive

TASK = f"{Path(__file__).with_name('example_task.py')}:RobustRegression"
CODE = "def soft_abs(prediction, target):\n    d = prediction - target\n    return torch.sqrt(1 + d * d) - 1\n"
LATER = "def clipped(prediction, target):\n    return torch.clamp((prediction - target) ** 2, max=4.0)\n"
ENV = {**os.environ, "OPENAI_API_KEY": "test-key", "OMP_NUM_THREADS": "1"}


def llm2(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LLM2, *arguments], capture_output=True, text=True, timeout=120, env=ENV)


def test_a_second_writer_is_refused_readers_go_on_and_a_killed_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    # The proposer's second answer never comes in time: the first writer waits inside its run, holding the lock,
    # with one proposal scored (something to export).
    script = [completion(good_reply_json(name="soft_abs", code=CODE)),
              completion(good_reply_json(name="never", code=LATER), delay_s=300)]
    with FakeOpenAIServer(script, default=completion(good_reply_json(name="clipped", code=LATER))) as server:
        writer = start_in_session([*LLM2, "discover", "--task", TASK, "--proposer", "openai", "--model", "fake-model",
                                   "--base-url", server.base_url, "--generations", "2", "--population", "1",
                                   "--seeds", "1", "--workers", "1", "--run-dir", str(run_dir)])
        try:
            wait_for_archive(run_dir, writer, lambda archive: len(server.requests) >= 2,
                             "the proposer's second request", timeout_s=120)
            # the first in a real process, the others in this one (each real one pays the torch imports again)
            for second in (llm2("discover", "--run-dir", str(run_dir), "--resume"),
                           llm2_here("evaluate", "--task", TASK, "--objective", "squared", "--seeds", "1",
                                     "--run-dir", str(run_dir))):
                assert second.returncode == 2, second.stderr
                lines = second.stderr.strip().splitlines()
                assert len(lines) == 1 and f"process {writer.pid}" in lines[0], second.stderr
            for reader in (llm2("leaderboard", str(run_dir)), llm2_here("report", str(run_dir)),
                           llm2_here("export", str(run_dir), "--top", "1", "--out", str(tmp_path / "best.py"))):
                assert reader.returncode == 0, reader.stderr
            assert writer.poll() is None  # the refused writers changed nothing for the running one
        finally:
            os.killpg(writer.pid, signal.SIGKILL)
            writer.wait()
        resumed = llm2("discover", "--run-dir", str(run_dir), "--resume")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "soft_abs" in resumed.stdout and "clipped" in resumed.stdout
