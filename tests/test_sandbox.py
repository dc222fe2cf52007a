"""The sandbox's parts with real processes: the channel, killing, the runner, the workers and the executor.

The operating-system layers themselves are tested in test_confinement.py; here they are exercised through real
workers, as candidates meet them.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import psutil
import pytest
import torch

from llm2.evaluation import EvalJob
from llm2.trusted import evaluate_trusted
from llm2.execution import make_executor
from llm2.execution.handle import WorkerHandle
from llm2.execution.scoring import ScoringSide
from llm2.sandbox import channel
from llm2.sandbox.limits import LAYERS, SIMULATE_ENV, SandboxLimits, kill_group
from llm2.sandbox.preflight import SandboxUnavailable, preflight
from llm2.sandbox.worker import WorkerConfig
from llm2.tasks import load_task
from llm2.temp_dirs import MARKER
from llm2.task_api.base import EvalSetting, TensorSpec
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask
from testkit import descendants

TASK = load_task("preference-synthetic")
SETTING = EvalSetting(TASK.parse_settings({"fitness": "judge"}), budget=0.1)  # the judge: no dpo frontier to trace
DPO = OBJECTIVES["dpo"].code


# -- the channel ---------------------------------------------------------------------------------------------------
SPEC = {"w": TensorSpec((2, 3), "float32"), "b": TensorSpec((3,), "float32")}


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
    ({"w": torch.zeros(3, 2), "b": torch.zeros(3)}, "weight 'w' is float32 [3, 2]; the model's is"),
    ({"w": torch.zeros(2, 3, dtype=torch.float64), "b": torch.zeros(3)}, "weight 'w' is float64"),
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


def test_an_output_directory_is_moved_out_of_the_scratch_then_checked(tmp_path):
    """Runtime(output="directory"): the directory a dead child named is moved out of its scratch and made the
    worker's own; a name that is not plain, a link in its place or too many bytes are refused, and nothing refused
    is left behind. (What a candidate can put inside one is tested through a real task, in test_merging_hf.py.)"""
    import stat

    from safetensors.torch import save_file

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    patterns = ("*.safetensors", "*.json")

    def written(name: str):
        directory = scratch / name
        directory.mkdir()
        save_file({"w": torch.ones(2)}, str(directory / "model.safetensors"))
        (directory / "config.json").write_text("{}")
        return directory

    written("out")
    taken = channel.take_directory(scratch, "out", tmp_path / "taken", 10_000, patterns)
    assert taken == tmp_path / "taken" and not (scratch / "out").exists()
    assert sorted(p.name for p in taken.iterdir()) == ["config.json", "model.safetensors"]
    assert stat.S_IMODE(taken.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in taken.iterdir()} == {0o600}
    for name in ("../out", "/etc", "", ".hidden", "a/b", 7):
        with pytest.raises(channel.ChannelError, match="not a plain name"):
            channel.take_directory(scratch, name, tmp_path / "refused", 10_000, patterns)
    with pytest.raises(channel.ChannelError, match="wrote no directory 'missing'"):
        channel.take_directory(scratch, "missing", tmp_path / "refused", 10_000, patterns)
    (scratch / "link").symlink_to(written("real"))
    with pytest.raises(channel.ChannelError, match="'link' is not a directory"):
        channel.take_directory(scratch, "link", tmp_path / "refused", 10_000, patterns)
    with pytest.raises(channel.ChannelError, match="holds more than 10 bytes"):
        channel.take_directory(scratch, "real", tmp_path / "refused", 10, patterns)
    assert not (tmp_path / "refused").exists() and not (scratch / "real").exists()


# -- killing -------------------------------------------------------------------------------------------------
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


# -- workers and the trusted scorer: tamper-proof scoring and the cascade -------------------------------------------
class _StrictProbeTask(PreferenceSyntheticTask):
    """The real task, with a collapse threshold no policy meets, to drive the probe's stop path."""

    def collapse_reason(self, probe, reference, baseline_probe):
        return f"the probe's reward {probe.fitness:.3f} is below the test's bar of 2.0"


def handle_for(task=TASK, **config) -> WorkerHandle:
    """A worker driven directly, as an executor drives it, but without the executor's static checks: what a
    candidate meets here is the runtime sandbox alone."""
    TASK.prepare(SETTING.task)
    config.setdefault("limits", SandboxLimits(timeout_s=60))
    config.setdefault("warm_settings", dataclasses.asdict(SETTING.task))  # ready (data loaded) once started
    return WorkerHandle(WorkerConfig("preference-synthetic", **config), ScoringSide(task))


@pytest.fixture(scope="module")
def handle():
    handle = handle_for()
    yield handle
    handle.close()


def test_the_sandbox_scores_exactly_what_trusted_code_scores_and_records_its_layers(handle):
    trusted = evaluate_trusted(TASK, DPO, SETTING)
    sandboxed = handle.run(EvalJob(DPO, SETTING))
    assert sandboxed.status == "ok" and sandboxed.stage == "done", sandboxed.error
    assert sandboxed.metrics == trusted.metrics
    assert sandboxed.loss_trace == trusted.loss_trace
    assert sandboxed.sandbox[:len(LAYERS)] == LAYERS and sandboxed.probe_fitness is not None
    assert sandboxed.sandbox[len(LAYERS):] in ((), ("cgroup",))  # the optional layer, where one can be made


def test_the_probe_stops_a_collapsing_run_and_records_the_stage():
    strict = handle_for(_StrictProbeTask())
    full = handle_for(cascade=False)
    try:
        stopped = strict.run(EvalJob(DPO, SETTING))
        assert (stopped.status, stopped.stage) == ("failed", "probe")
        assert stopped.error.startswith("probe: the probe's reward") and "after 25% of training" in stopped.error
        assert stopped.metrics is None and stopped.probe_fitness is not None
        done = full.run(EvalJob(DPO, SETTING))
        assert (done.status, done.stage) == ("ok", "done") and done.probe_fitness is None  # nothing probes
    finally:
        strict.close()
        full.close()


def test_the_candidates_process_holds_no_scoring_data(handle):
    """Even with the static checks out of the way, what a candidate's process can reach holds nothing of the
    world's gold reward, held-out prompts or sampling seed: its worker never loaded them."""
    probe = (
        "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
        "    import os, sys\n"
        "    world = sys.modules['llm2.tasks.preference_synthetic.world']\n"
        "    secret = sys.modules['llm2.task_api.world_secret']\n"
        "    raise ValueError(f'worlds={len(world._WORLDS)} training={len(world._TRAINING)} '\n"
        "                     f'secret={secret._loaded} file={os.environ.get(secret.SECRET_ENV)}')\n")
    result = handle_for().run(EvalJob(probe, SETTING))
    # nor the world secret: its worker named the training file by the published fingerprint, never reading it
    assert result.status == "invalid" and "worlds=0 training=1 secret=None file=None" in result.error, result.error


def test_each_candidate_gets_a_fresh_scratch_directory_that_is_removed():
    code = DPO.replace("    rho =", "    open('note.txt', 'w').write('x')\n    rho =", 1)
    writer = handle_for()
    try:
        result = writer.run(EvalJob(code, SETTING))
        assert result.status == "ok", result.error
        home = writer._home
        assert [p.name for p in home.iterdir() if p.name not in ("worker.log", MARKER)] == [
            next(p.name for p in home.iterdir() if p.name.startswith("llm2-sandbox-"))]
        sandbox = next(p for p in home.iterdir() if p.name.startswith("llm2-sandbox-"))
        assert list(sandbox.iterdir()) == []  # no candidate directory, no weights file is left behind
    finally:
        writer.close()


@pytest.mark.parametrize("layer", ["seccomp", "landlock", "unprivileged_user"])
def test_a_missing_layer_refuses_the_candidate_unless_the_user_opted_out(layer, monkeypatch):
    monkeypatch.setenv(SIMULATE_ENV, layer)  # the workers inherit it: the layer's system call "fails"
    refusing = handle_for()
    allowing = handle_for(allow_missing=frozenset({layer}))
    try:
        refused = refusing.run(EvalJob(DPO, SETTING))
        assert refused.status == "failed" and refused.error.startswith(f"sandbox unavailable: {layer}:"), refused
        assert refused.metrics is None
        allowed = allowing.run(EvalJob(DPO, SETTING))
        assert allowed.status == "ok" and layer not in allowed.sandbox and len(set(allowed.sandbox) & set(LAYERS)) == len(LAYERS) - 1
    finally:
        refusing.close()
        allowing.close()
    with pytest.raises(SandboxUnavailable, match=f"sandbox unavailable: {layer}"):
        preflight()
    assert layer not in preflight(frozenset({layer}))


def test_preflight_reports_every_layer_on_this_machine():
    assert preflight() == LAYERS


# -- workers and the local executor ------------------------------------------------------------------------------
def test_a_worker_that_dies_mid_job_is_reported_and_replaced():
    handle = handle_for(limits=SandboxLimits(timeout_s=30))
    try:
        handle.start()
        first_pid = handle.pid
        loop = DPO.replace("    rho =", "    while True:\n        pass\n    rho =", 1)
        killer = threading.Timer(4.0, lambda: os.kill(first_pid, signal.SIGKILL))
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


def test_secrets_in_the_environment_do_not_reach_the_candidate(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    leak = DPO.replace("    rho =", "    import os\n    raise ValueError('env:' + os.environ.get('OPENAI_API_KEY', 'none'))\n"
                                    "    rho =", 1)
    handle = handle_for(limits=SandboxLimits(timeout_s=30))
    try:
        result = handle.run(EvalJob(leak, SETTING))
    finally:
        handle.close()
    assert result.status == "invalid" and "env:none" in result.error and "sk-do-not-leak" not in result.error


def test_a_hung_worker_is_killed_at_the_outer_deadline():
    handle = handle_for(limits=SandboxLimits(timeout_s=2), answer_grace_s=1.0)
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
    before = descendants()
    with make_executor("local", task_spec="preference-synthetic", workers=2, timeout_s=60,
                       warm_settings=SETTING.task) as executor:
        futures = [executor.submit(EvalJob(DPO, SETTING, key=str(i))) for i in range(3)]
        rejected = executor.submit(EvalJob("import os\n", SETTING))
        assert rejected.done() and rejected.result().status == "invalid"  # answered without a worker
        fitness = {f.result().fitness for f in futures}
        assert len(fitness) == 1 and None not in fitness  # the same job scores the same in every worker
    with pytest.raises(RuntimeError, match="closed"):
        executor.submit(EvalJob(DPO, SETTING))
    assert descendants() - before == set()


def test_make_executor_explains_bad_arguments():
    from llm2.tasks import TaskNotFound

    with pytest.raises(ValueError, match="unknown executor 'slurm'; choose one of: local, ray"):
        make_executor("slurm", task_spec="preference-synthetic")
    with pytest.raises(TaskNotFound, match="unknown task"):
        make_executor("local", task_spec="no-such-task")
    with pytest.raises(ValueError, match="the timeout must be positive"):
        make_executor("local", task_spec="preference-synthetic", timeout_s=0)
