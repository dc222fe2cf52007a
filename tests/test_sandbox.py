"""The sandbox's parts with real processes: the channel, the OS confinement, killing, the runner and the workers."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from llm2.candidate import load_function
from llm2.evaluation import evaluate_trusted
from llm2.execution import EvalJob, make_executor
from llm2.objectives import OBJECTIVES
from llm2.sandbox import channel, landlock
from llm2.sandbox.limits import GIB, SandboxLimits, confine, kill_group, read_roots
from llm2.sandbox.runner import SandboxOptions, SandboxRunner
from llm2.sandbox.worker import WorkerConfig, WorkerHandle
from llm2.tasks import get_task
from llm2.tasks.base import EvalSetting
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask
from llm2.tasks.preference_synthetic.world import cache_dir

SETTING = EvalSetting(beta=0.05, budget=0.1)
DPO = OBJECTIVES["dpo"].code


# -- the channel ---------------------------------------------------------------------------------------------------
SPEC = {"w": channel.TensorSpec((2, 3), torch.float32), "b": channel.TensorSpec((3,), torch.float32)}


def roundtrip(header: dict, payload: bytes, max_payload: int = 1 << 20) -> channel.Message:
    read, write = os.pipe()
    try:
        thread = threading.Thread(target=channel.send, args=(write, header, payload))
        thread.start()
        message = channel.receive(read, time.monotonic() + 5, max_payload)
        thread.join()
        return message
    finally:
        os.close(read)
        os.close(write)


def test_weights_and_trace_cross_the_channel_intact():
    weights = {"w": torch.randn(2, 3), "b": torch.randn(3)}
    message = roundtrip({"kind": "result", "loss_trace": [0.5, 0.25]}, channel.encode_tensors(weights))
    decoded = channel.decode_weights(message.payload, SPEC)
    assert all(torch.equal(decoded[k], weights[k]) for k in weights)
    assert channel.decode_loss_trace(message.header) == [0.5, 0.25]


@pytest.mark.parametrize("weights, expected", [
    ({"w": torch.zeros(3, 2), "b": torch.zeros(3)}, "weight 'w' is torch.float32 [3, 2]; the model's is"),
    ({"w": torch.zeros(2, 3, dtype=torch.float64), "b": torch.zeros(3)}, "weight 'w' is torch.float64"),
    ({"w": torch.zeros(2, 3)}, "missing ['b']"),
    ({"w": torch.zeros(2, 3), "b": torch.zeros(3), "x": torch.zeros(1)}, "unexpected ['x']"),
    ({"w": torch.full((2, 3), float("nan")), "b": torch.zeros(3)}, "weight 'w' holds NaN or infinite values"),
])
def test_returned_weights_are_checked_against_the_model(weights, expected):
    with pytest.raises(channel.ChannelError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        channel.decode_weights(channel.encode_tensors(weights), SPEC)


def test_the_reader_refuses_garbage_oversize_and_silence():
    with pytest.raises(channel.ChannelError, match="not valid safetensors"):
        channel.decode_weights(b"\x80\x04 a pickle, not tensors", SPEC)
    with pytest.raises(channel.ChannelError, match="the model's weights take at most"):
        roundtrip({"kind": "result"}, b"x" * 2000, max_payload=1000)
    with pytest.raises(channel.ChannelError, match="without a known 'kind'"):
        roundtrip({"kind": "fitness", "value": 1.0}, b"")
    with pytest.raises(channel.ChannelError, match="loss trace"):
        channel.decode_loss_trace({"loss_trace": "1.0"})
    read, write = os.pipe()
    os.write(write, channel._FRAME.pack(channel.MAX_HEADER_BYTES + 1, 0))
    with pytest.raises(channel.ChannelError, match="byte header"):
        channel.receive(read, time.monotonic() + 5, 100)
    with pytest.raises(channel.ChannelTimeout):
        channel.receive(read, time.monotonic() + 0.1, 100)
    os.close(write)
    with pytest.raises(channel.ChannelClosed):
        channel.receive(read, time.monotonic() + 5, 100)
    os.close(read)


# -- the operating-system confinement ------------------------------------------------------------------------------
def in_confined_child(probe, scratch: Path) -> str:
    """Fork, confine, run ``probe()`` and return what it reports (a short string) through a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read)
            confine(scratch, SandboxLimits(timeout_s=10, memory_bytes=GIB), read_roots())
            try:
                answer = probe()
            except BaseException as exc:  # noqa: BLE001
                answer = f"{type(exc).__name__}: {exc}"
            os.write(write, str(answer).encode()[:4000])
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def _write_in(path: Path):
    def probe():
        path.write_text("written")
        return "wrote"
    return probe


def _fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return "forked"


def _connect(port: int):
    def probe():
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "connected"
    return probe


def _allocate():
    hoard = [bytearray(200_000_000) for _ in range(20)]  # 4 GB, beyond the 1 GiB allowance
    return f"allocated {len(hoard)}"


@pytest.fixture()
def scratch(tmp_path):
    path = tmp_path / "scratch"
    path.mkdir()
    return path


needs_landlock = pytest.mark.skipif(landlock.abi_version() < 6, reason="needs Landlock ABI 6 (Linux 6.12)")


@needs_landlock
def test_confinement_blocks_files_processes_network_and_signals(scratch, tmp_path):
    outside = tmp_path / "outside.txt"
    server = socket.create_server(("127.0.0.1", 0))
    try:
        port = server.getsockname()[1]
        assert in_confined_child(_write_in(scratch / "ok.txt"), scratch) == "wrote"
        assert "PermissionError" in in_confined_child(_write_in(outside), scratch)
        assert not outside.exists()
        assert "PermissionError" in in_confined_child(lambda: os.listdir(cache_dir()), scratch)
        assert "PermissionError" in in_confined_child(lambda: open("/etc/passwd").read(), scratch)
        assert "PermissionError" in in_confined_child(_fork, scratch)
        assert in_confined_child(lambda: os.system("true"), scratch) != "0"  # the shell never starts
        assert "connected" not in in_confined_child(_connect(port), scratch)
        assert "PermissionError" in in_confined_child(lambda: os.kill(os.getppid(), signal.SIGKILL), scratch)
        assert "MemoryError" in in_confined_child(_allocate, scratch)
        assert in_confined_child(lambda: torch.ones(3).sum().item(), scratch) == "3.0"  # torch still works
    finally:
        server.close()


@needs_landlock
def test_every_layer_reports_that_it_took(scratch):
    report = in_confined_child(lambda: "ok", scratch)
    assert report == "ok"
    runner = SandboxRunner(get_task("preference-synthetic"))
    try:
        result = runner.evaluate(DPO, SETTING, SandboxOptions(SandboxLimits(timeout_s=60)))
        assert result.status == "ok", result.error
        defences = runner.last_defences
        assert defences["network_namespace"] and defences["seccomp"] and defences["capabilities_dropped"]
        assert defences["landlock_files"] and defences["landlock_network"] and defences["landlock_signals"]
        assert {"RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE"} <= set(defences["rlimits"])
    finally:
        runner.close()


def test_kill_group_ends_a_process_that_ignores_sigterm_and_its_children():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: a group leader that ignores SIGTERM, with a grandchild
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = os.fork()
        if grandchild == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(1)
        os.write(write, str(grandchild).encode())
        while True:
            time.sleep(1)
    os.close(write)
    grandchild = int(os.read(read, 64))
    os.close(read)
    started = time.monotonic()
    status = kill_group(pid, grace_s=0.3)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert time.monotonic() - started < 5
    for _ in range(100):  # the grandchild was reparented; it dies from the group SIGKILL
        if not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.05)
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


# -- the runner: tamper-proof scoring and the cascade --------------------------------------------------------------
class _StrictProbeTask(PreferenceSyntheticTask):
    """The real task, with a collapse threshold no policy meets, to drive the probe's stop path."""

    def collapse_reason(self, probe_metrics, setting):
        return f"the probe's reward {probe_metrics.fitness:.3f} is below the test's bar of 2.0"


@pytest.fixture(scope="module")
def runner():
    runner = SandboxRunner(get_task("preference-synthetic"))
    runner.prepare(SETTING)
    yield runner
    runner.close()


def test_the_sandbox_scores_exactly_what_trusted_code_scores(runner):
    task = runner.task
    trusted = evaluate_trusted(task, load_function(DPO, task.contract), SETTING)
    sandboxed = runner.evaluate(DPO, SETTING, SandboxOptions(SandboxLimits(timeout_s=60)))
    assert sandboxed.status == "ok" and sandboxed.stage == "done"
    assert sandboxed.metrics == trusted.metrics
    assert sandboxed.loss_trace == trusted.loss_trace


def test_the_probe_stops_a_collapsing_run_and_records_the_stage():
    runner = SandboxRunner(_StrictProbeTask())
    try:
        limits = SandboxLimits(timeout_s=60)
        stopped = runner.evaluate(DPO, SETTING, SandboxOptions(limits, cascade=True))
        assert (stopped.status, stopped.stage) == ("failed", "probe")
        assert stopped.error.startswith("probe: the probe's reward") and "after 25% of training" in stopped.error
        assert stopped.metrics is None
        full = runner.evaluate(DPO, SETTING, SandboxOptions(limits, cascade=False))
        assert (full.status, full.stage) == ("ok", "done")  # without the cascade nothing probes
    finally:
        runner.close()


def test_each_candidate_gets_a_fresh_scratch_directory_that_is_removed(runner):
    code = DPO.replace("    rho =", "    open('note.txt', 'w').write('x')\n    rho =", 1)
    result = runner.evaluate(code, SETTING, SandboxOptions(SandboxLimits(timeout_s=60), static_checks=False))
    assert result.status == "ok", result.error
    assert list(runner.scratch_root.iterdir()) == []


# -- workers and the local executor ------------------------------------------------------------------------------
def test_a_worker_that_dies_mid_job_is_reported_and_replaced():
    config = WorkerConfig("preference-synthetic", limits=SandboxLimits(timeout_s=30))
    handle = WorkerHandle(config)
    try:
        handle.start()
        first_pid = handle.pid
        loop = DPO.replace("    rho =", "    while True:\n        pass\n    rho =", 1)
        killer = threading.Timer(2.0, lambda: os.kill(first_pid, signal.SIGKILL))
        killer.start()
        result = handle.run(EvalJob(loop, SETTING))
        killer.join()
        assert result.status == "failed"
        assert "worker failure: the worker process was killed by signal 9; the worker was replaced" in result.error
        after = handle.run(EvalJob(DPO, SETTING))
        assert after.status == "ok" and handle.pid != first_pid
    finally:
        handle.close()
    assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE


def test_a_setting_the_task_refuses_is_reported_and_the_worker_serves_on():
    handle = WorkerHandle(WorkerConfig("preference-synthetic", limits=SandboxLimits(timeout_s=30)))
    try:
        refused = handle.run(EvalJob(DPO, SETTING.replace(label_noise=0.9)))
        assert refused.status == "failed" and "worker error: ValueError: label_noise must be in [0, 0.5)" \
            in refused.error
        assert handle.run(EvalJob(DPO, SETTING)).status == "ok"
    finally:
        handle.close()


def test_secrets_in_the_environment_do_not_reach_the_candidate(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    leak = DPO.replace("    rho =", "    import os\n    raise ValueError('env:' + os.environ.get('OPENAI_API_KEY', 'none'))\n"
                                    "    rho =", 1)
    config = WorkerConfig("preference-synthetic", limits=SandboxLimits(timeout_s=30), static_checks=False)
    handle = WorkerHandle(config)
    try:
        result = handle.run(EvalJob(leak, SETTING))
    finally:
        handle.close()
    assert result.status == "invalid" and "env:none" in result.error and "sk-do-not-leak" not in result.error


def test_a_hung_worker_is_killed_at_the_outer_deadline():
    config = WorkerConfig("preference-synthetic", limits=SandboxLimits(timeout_s=2), answer_grace_s=1.0)
    handle = WorkerHandle(config)
    try:
        handle.start()
        stopped_pid = handle.pid
        loop = DPO.replace("    rho =", "    while True:\n        pass\n    rho =", 1)
        # the worker stops answering while its child loops: nobody enforces the child's timeout any more
        freezer = threading.Timer(1.0, lambda: os.kill(stopped_pid, signal.SIGSTOP))
        freezer.start()
        started = time.monotonic()
        result = handle.run(EvalJob(loop, SETTING))
        freezer.join()
        assert result.status == "failed" and "hung" in result.error
        assert time.monotonic() - started < 30
        assert handle.run(EvalJob(DPO, SETTING)).status in ("ok", "timeout")  # a fresh worker serves again
    finally:
        handle.close()


def test_the_local_executor_serves_futures_and_leaves_no_process():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with make_executor("local", task_name="preference-synthetic", workers=2, timeout_s=60) as executor:
        futures = [executor.submit(EvalJob(DPO, SETTING, key=str(i))) for i in range(3)]
        rejected = executor.submit(EvalJob("import os\n", SETTING))
        assert rejected.done() and rejected.result().status == "invalid"  # answered without a worker
        fitness = {f.result().fitness for f in futures}
        assert len(fitness) == 1 and None not in fitness  # the same job scores the same in every worker
    with pytest.raises(RuntimeError, match="closed"):
        executor.submit(EvalJob(DPO, SETTING))
    assert {p.pid for p in psutil.Process().children(recursive=True)} - before == set()


def test_make_executor_explains_bad_arguments():
    with pytest.raises(ValueError, match="unknown executor 'slurm'; choose one of: local, ray"):
        make_executor("slurm", task_name="preference-synthetic")
    with pytest.raises(KeyError, match="unknown task"):
        make_executor("local", task_name="no-such-task")
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        make_executor("local", task_name="preference-synthetic", timeout_s=0)
