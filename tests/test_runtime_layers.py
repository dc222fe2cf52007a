"""The runtime layers against the attack classes that deny-lists let through (issue 19, points 4-6), each through
the real executor with the static checks off, so that only the operating-system layers stand in the way.

Shared memory is watched in the host's /proc/meminfo while a candidate allocates SysV segments; the scratch's
total is met by many small files; a task's hidden file is read through a venv's ``lib64 -> lib`` link; secrets
and the names of the host's variables are looked for in the candidate's environment. The hostile programs live in
tests/hostile/ (the corpus runs them too).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from llm2.evaluation import EvalJob
from llm2.execution import make_executor
from llm2.sandbox import selftest
from llm2.sandbox.environment import worker_environment
from llm2.sandbox.filesystem import carve_out, read_roots
from llm2.sandbox.limits import GIB, MIB, SIMULATE_ENV, SandboxLimits
from llm2.tasks import load_task
from llm2.task_api.base import EvalSetting

HOSTILE = Path(__file__).parent / "hostile"
TASK = load_task("preference-synthetic")
SETTING = EvalSetting(TASK.parse_settings({"fitness": "judge"}), budget=0.05)  # the judge: no dpo frontier to trace
LIMITS = SandboxLimits(timeout_s=30.0, memory_bytes=1 * GIB)
SECRETS = {"DATABASE_URL": "postgres://llm2:hunter2-db-secret@db.internal/runs", "GH_PAT": "ghp_secretTokenOfTheHost",
           "LLM2_TEST_HOST_ONLY_NAME": "a-name-only-the-host-has"}


def hostile(name: str) -> str:
    return (HOSTILE / f"{name}.py").read_text().replace("@CANARY@", tempfile.gettempdir())


def shmem_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        return int(re.search(r"^Shmem:\s+(\d+) kB", meminfo.read(), re.M).group(1)) * 1024


@pytest.fixture(scope="module")
def executor():
    TASK.prepare(SETTING.task)
    saved = {name: os.environ.get(name) for name in SECRETS}
    os.environ.update(SECRETS)  # the host's, as the executor starts its worker
    try:
        executor = make_executor("local", task_spec="preference-synthetic", task=TASK, workers=1, timeout_s=30.0,
                                 limits=LIMITS, static_checks=False, warm_settings=SETTING.task)
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    yield executor
    executor.close()


def run(executor, code: str):
    return executor.submit(EvalJob(code, SETTING)).result()


def test_sysv_shared_memory_does_not_grow_the_hosts_shmem_past_the_memory_limit(executor):
    baseline, peak, done = shmem_bytes(), [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], shmem_bytes())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = run(executor, hostile("sysv_shared_memory"))
    finally:
        done.set()
        watcher.join()
    growth = peak[0] - baseline
    print(f"Shmem grew by {growth / MIB:.0f} MiB; the candidate: {result.status}: {result.error}")
    assert growth < LIMITS.memory_bytes
    assert result.status == "invalid" and "shared memory refused after 0 MiB: errno 1" in result.error


def test_many_small_files_stop_at_the_scratch_cap(executor):
    result = run(executor, hostile("disk_fill"))
    written = re.search(r"stopped after (\d+) files", result.error or "")
    assert written, f"{result.status}: {result.error}"
    mib = int(written.group(1)) // 2
    assert "No space left on device" in result.error
    assert 200 <= mib <= LIMITS.scratch_bytes // MIB  # the cap stopped it, not some other limit


def test_the_candidate_sees_a_fixed_environment_and_nothing_of_the_hosts(executor):
    code = '''import os


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    try:
        with open("/proc/self/environ", "rb") as handle:
            started = handle.read().replace(b"\\0", b" ").decode(errors="replace")
    except OSError:  # as root the child is not dumpable: its /proc entry belongs to root
        started = ""
    raise RuntimeError(f"environ: {sorted(os.environ.items())} started: {started.strip()}")
'''
    result = run(executor, code)
    assert result.status == "invalid" and "environ: " in result.error, result.error
    for name, value in SECRETS.items():
        assert name not in result.error and value not in result.error
    names = set(re.findall(r"\('([A-Z_]+)', ", result.error))
    assert names == {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                     "OPENBLAS_NUM_THREADS"}
    assert re.search(r"started:\s*(\(on a batch|$)", result.error)  # the block it started with: zeroed or closed
    assert run(executor, hostile("environment_secrets")).status == "ok"


def test_the_worker_environment_is_chosen_by_name(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    environment = worker_environment()
    assert not {*SECRETS, "OPENAI_API_KEY"} & set(environment)
    assert environment["OMP_NUM_THREADS"] == "1" and environment["PATH"] == os.environ["PATH"]


# -- hidden files through a symbolic link -------------------------------------------------------------------------
def test_carving_a_hidden_path_out_of_a_venv_resolves_its_lib64_link(tmp_path):
    venv = tmp_path / "venv"
    (venv / "lib" / "secret").mkdir(parents=True)
    (venv / "lib" / "secret" / "heldout.txt").write_text("targets")
    (venv / "lib" / "public").mkdir()
    (venv / "bin").mkdir()
    (venv / "lib64").symlink_to("lib")
    hidden = os.path.realpath(venv / "lib64" / "secret")
    roots = sorted(set(carve_out([str(venv)], hidden)))  # lib reached twice: itself, and through lib64
    assert roots == [str(venv / "bin"), str(venv / "lib" / "public")]
    assert not [r for r in roots if os.path.realpath(hidden).startswith(os.path.realpath(r))]


@pytest.mark.timeout(300)
def test_a_hidden_file_cannot_be_read_through_the_venvs_lib64_link():
    """The classification task hides scikit-learn's digits inside the venv; its lib64 -> lib link once made them
    readable. The candidate tries the link's route, the plain route and the resolved one."""
    task = load_task("classification")
    settings = task.default_settings()
    task.prepare(settings)
    digits = task.hidden_paths()[0]
    routes = {os.path.realpath(digits), digits}
    for prefix in {sys.prefix, os.path.realpath(sys.prefix)}:
        inside = os.path.relpath(os.path.realpath(digits), os.path.realpath(prefix))
        if not inside.startswith(".."):
            routes |= {os.path.join(prefix, "lib64", inside.split("/", 1)[1]), os.path.join(prefix, inside)}
    assert any("/lib64/" in route for route in routes) or not os.path.islink(os.path.join(sys.prefix, "lib64"))
    code = f'''import os

ROUTES = {sorted(routes)!r}


def loss(logits, targets):
    for route in ROUTES:
        try:
            with open(route, "rb") as handle:
                data = handle.read(16)
        except OSError:
            continue
        if data:  # the mount layer covers a hidden file with /dev/null: it may open, empty
            raise RuntimeError(f"read the hidden file through {{route}}: {{len(data)}} bytes")
    return F.cross_entropy(logits, targets, reduction="none")
'''
    with make_executor("local", task_spec="classification", task=task, workers=1, timeout_s=120.0,
                       static_checks=False, warm_settings=settings) as executor:
        result = executor.submit(EvalJob(code, EvalSetting(settings, budget=0.1))).result()
    assert result.status == "ok", result.error


@pytest.fixture()
def open_tmp():
    """A directory every user can pass through (pytest's own is closed to the child's unprivileged user)."""
    path = Path(tempfile.mkdtemp(prefix="llm2-selftest-"))
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def test_the_self_test_refuses_a_sandbox_that_would_show_a_hidden_path(open_tmp, monkeypatch):
    """Read roots that still hold a hidden file (as a mistake in carving would leave them), and no mount layer to
    cover it: the start-up self-test finds it readable and refuses; carved properly, it passes."""
    tmp_path = open_tmp
    public = tmp_path / "public"
    (public / "hidden").mkdir(parents=True)
    (public / "hidden" / "targets.txt").write_text("694")
    for directory in (tmp_path, public, public / "hidden"):
        directory.chmod(0o755)
    (public / "hidden" / "targets.txt").chmod(0o644)
    hidden = [str(public / "hidden")]
    monkeypatch.setenv(SIMULATE_ENV, "mount_namespace")
    opted_out = frozenset({"mount_namespace"})
    uncarved = read_roots() + [str(public)]
    reason = selftest.refusal(hidden, uncarved, LIMITS, opted_out, tmp_path)
    assert reason is not None and reason.startswith("sandbox unavailable: landlock: a confined child could read")
    carved = read_roots(exclude=hidden) + list(carve_out([str(public)], os.path.realpath(hidden[0])))
    assert selftest.refusal(hidden, carved, LIMITS, opted_out, tmp_path) is None


# -- the channel reads a result file without following a name -----------------------------------------------------
def test_a_result_file_that_is_a_link_or_a_fifo_is_refused_not_followed(tmp_path):
    from llm2.sandbox import channel

    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"hidden")
    (tmp_path / "link.safetensors").symlink_to(secret)
    with pytest.raises(channel.ChannelError, match="a symbolic link is refused"):
        channel.read_regular_file(tmp_path / "link.safetensors", 1 << 20)
    os.mkfifo(tmp_path / "fifo.safetensors")  # opening it for reading would block for ever without O_NONBLOCK
    with pytest.raises(channel.ChannelError, match="is not a regular file"):
        channel.read_regular_file(tmp_path / "fifo.safetensors", 1 << 20)
    (tmp_path / "big.safetensors").write_bytes(b"x" * 2048)
    with pytest.raises(channel.ChannelError, match="holds 2,048 bytes"):
        channel.read_regular_file(tmp_path / "big.safetensors", 1024)
    with pytest.raises(channel.ChannelError, match="wrote no missing.safetensors"):
        channel.read_regular_file(tmp_path / "missing.safetensors", 1024)
    assert channel.read_regular_file(secret, 1024) == b"hidden"
