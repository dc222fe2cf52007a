"""The hostile corpus (tests/hostile/*.py) through the real local executor and the real preference task.

Each file says in its header what it tries (``# tries:``), how it must end with every defence on (``# expect:
STATUS STAGE TEXT``) and, for the attacks the operating-system sandbox must stop by itself, how it ends with the
static checks switched off (``# runtime: ...``). ``# tamper: yes`` marks programs that return the honest DPO loss
plus a trick: they must never score above DPO itself, at the discovery's setting or a held-out one.
``# layer: NAME`` names the sandbox layer that stops it at runtime: run once more with that layer missing (the
user's explicit opt-out), it must end differently — so that layer, and no other, is what stopped it. Each field may
list alternatives separated by ``|``.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from llm2.evaluation import EvalJob
from llm2.execution import make_executor
from llm2.sandbox.limits import GIB, SIMULATE_ENV, SandboxLimits
from llm2.tasks import load_task
from llm2.task_api import world_secret
from llm2.task_api.base import EvalSetting
from llm2.task_api.cache import cache_dir
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference_synthetic.world import world_path
from testkit import descendants

HOSTILE = Path(__file__).parent / "hostile"
TASK = load_task("preference-synthetic")
# a tenth of the training budget keeps the corpus quick; the judge traces no dpo frontier
SETTING = EvalSetting(TASK.parse_settings({"fitness": "judge"}), budget=0.1)
HELDOUT = SETTING.replace(label_noise=0.1)  # a held-out setting: other pairs, trained by the same workers
# the corpus's three runaways each hold a worker this long; an honest evaluation at this budget takes 1-2 s loaded
TIMEOUT_S = 6.0
LIMITS = SandboxLimits(timeout_s=TIMEOUT_S, memory_bytes=1 * GIB, output_bytes=1 << 20, term_grace_s=0.5)


@dataclass(frozen=True)
class Expectation:
    statuses: tuple[str, ...]
    stages: tuple[str, ...]
    texts: tuple[str, ...]

    @classmethod
    def parse(cls, line: str) -> "Expectation":
        status, stage, text = (line.split(maxsplit=2) + [""])[:3]
        return cls(tuple(status.split("|")), tuple(stage.split("|")), tuple(t.strip().lower() for t in text.split("|")))

    def problem(self, result) -> str | None:
        error = (result.error or "").lower() if result.status != "ok" else ""
        if result.status not in self.statuses or result.stage not in self.stages:
            return f"ended {result.status}/{result.stage} ({result.error}), expected {self.statuses}/{self.stages}"
        if result.status != "ok" and not any(text in error for text in self.texts):
            return f"error {result.error!r} names none of {self.texts}"
        return None


@dataclass(frozen=True)
class Program:
    name: str
    code: str
    tries: str
    expect: Expectation
    runtime: Expectation | None
    tamper: bool
    layer: str | None


def load_corpus(substitutions: dict[str, str]) -> list[Program]:
    programs = []
    for path in sorted(HOSTILE.glob("*.py")):
        text = path.read_text()
        headers = {}
        for line in text.splitlines():
            if not line.startswith("# ") or ":" not in line:
                break
            key, value = line[2:].split(":", 1)
            headers[key.strip()] = value.strip()
        for placeholder, value in substitutions.items():
            text = text.replace(placeholder, value)
        programs.append(Program(path.stem, text, headers.get("tries", ""), Expectation.parse(headers["expect"]),
                                Expectation.parse(headers["runtime"]) if "runtime" in headers else None,
                                headers.get("tamper") == "yes", headers.get("layer")))
    return programs


class Listener:
    """A real TCP server on 127.0.0.1 that records every connection a candidate manages to make."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


def snapshot(root: Path) -> dict[str, str]:
    """Path -> content hash of every file beneath ``root``."""
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(root.rglob("*"))
            if path.is_file()}


@pytest.fixture(scope="module")
def world_file() -> Path:
    for setting in (SETTING, HELDOUT):
        TASK.prepare(setting.task)
    return world_path(TASK.world_config, SETTING.task.world_seed)


@pytest.fixture()
def arena(tmp_path, world_file):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "canary.txt").write_text("untouched")
    listener = Listener()
    canary_before, cache_before = snapshot(canary), snapshot(cache_dir())
    substitutions = {"@CANARY@": str(canary), "@PORT@": str(listener.port), "@WORLD@": str(world_file),
                     "@SECRET@": str(world_secret.secret_path())}
    yield load_corpus(substitutions)
    listener.close()
    assert snapshot(canary) == canary_before, "a candidate changed the canary directory"
    cache_after = snapshot(cache_dir())  # other test runs may add worlds meanwhile; none may change
    assert {path: cache_after.get(path) for path in cache_before} == cache_before, "a candidate changed the cache"
    assert listener.connections == 0, "a candidate reached a TCP server on 127.0.0.1"


def run_corpus(executor, programs: list[Program], runtime: bool, setting: EvalSetting = SETTING) -> dict[str, object]:
    honest = executor.submit(EvalJob(OBJECTIVES["dpo"].code, setting, "dpo-before")).result()
    assert honest.status == "ok", honest.error
    futures = {p.name: executor.submit(EvalJob(p.code, setting, p.name)) for p in programs}
    results = {name: future.result() for name, future in futures.items()}
    after = executor.submit(EvalJob(OBJECTIVES["dpo"].code, setting, "dpo-after")).result()
    assert after.status == "ok" and after.fitness == honest.fitness, "the executor changed after the corpus"

    problems = []
    for program in programs:
        result = results[program.name]
        print(f"{program.name}: {result.status}/{result.stage} in {result.seconds:.1f} s: {result.error}")
        expectation = program.runtime if runtime else program.expect
        problem = expectation.problem(result)
        if problem:
            problems.append(f"{program.name} ({program.tries}): {problem}")
        if result.status == "timeout" and result.seconds > TIMEOUT_S + 5:
            problems.append(f"{program.name}: the timeout took {result.seconds:.1f} s to take effect")
        if program.tamper and result.fitness is not None and result.fitness > honest.fitness + 1e-9:
            problems.append(f"{program.name}: scored {result.fitness} above honest DPO's {honest.fitness}")
    assert not problems, "\n".join(problems)
    return results


def worker_processes(executor) -> list[psutil.Process]:
    return [psutil.Process(h.pid) for h in executor.handles if h.pid is not None]


def assert_nothing_left(executor, before: set[int]) -> None:
    for worker in worker_processes(executor):
        assert worker.children(recursive=True) == [], "a candidate's process outlived its evaluation"
    executor.close()
    assert descendants() - before == set(), "a process outlived the executor"


def test_the_corpus_covers_the_issue_list():
    programs = load_corpus({})
    assert len(programs) >= 35
    assert all(p.tries for p in programs), "each hostile program says what it tries"
    runtime = {p.name for p in programs if p.runtime}
    assert {"infinite_loop", "sleep_past_timeout", "memory_bomb", "fork_bomb", "socket_localhost",
            "write_outside_scratch", "ignore_sigterm", "print_flood", "frame_walk_forge", "frame_builtins_import",
            "prlimit_worker", "setpriority_others", "unix_socket_connect", "proc_scan", "symlink_in_scratch",
            "fifo_in_scratch", "device_node", "setsid_escape", "memfd_create", "ctypes_syscall", "sysv_shared_memory",
            "disk_fill", "environment_secrets"} <= runtime
    assert {p.layer for p in programs if p.layer} == {"seccomp", "landlock", "mount_namespace"}


@pytest.mark.timeout(600)
def test_every_hostile_program_is_rejected_with_a_reason(arena):
    before = descendants()
    executor = make_executor("local", task_spec="preference-synthetic", task=TASK, workers=2, timeout_s=TIMEOUT_S,
                             limits=LIMITS, warm_settings=SETTING.task)
    try:
        results = run_corpus(executor, arena, runtime=False)
        assert all(r.status != "ok" for r in results.values()), "every hostile program ends as a rejection"
        assert all(r.error for r in results.values())
    finally:
        assert_nothing_left(executor, before)


@pytest.mark.timeout(900)
def test_the_sandbox_alone_stops_them_without_static_checks(arena, monkeypatch):
    programs = [p for p in arena if p.runtime]
    before = descendants()
    executor = make_executor("local", task_spec="preference-synthetic", task=TASK, workers=2, timeout_s=TIMEOUT_S,
                             limits=LIMITS, static_checks=False, warm_settings=SETTING.task)
    try:
        results = run_corpus(executor, programs, runtime=True)
        # nothing forges a held-out evaluation either: its pairs come from the trusted process, its scoring too
        run_corpus(executor, [p for p in programs if p.tamper], runtime=True, setting=HELDOUT)
    finally:
        assert_nothing_left(executor, before)
    # which layer stopped each attack: without it (the user's opt-out), the same program ends differently
    for layer in sorted({p.layer for p in programs if p.layer}):
        monkeypatch.setenv(SIMULATE_ENV, layer)
        chosen = [p for p in programs if p.layer == layer]
        # a worker per program at most: each one starts an interpreter and loads the world
        executor = make_executor("local", task_spec="preference-synthetic", task=TASK, workers=min(2, len(chosen)),
                                 timeout_s=TIMEOUT_S, limits=LIMITS, static_checks=False,
                                 allow_missing=frozenset({layer}), warm_settings=SETTING.task)
        try:
            futures = {p.name: executor.submit(EvalJob(p.code, SETTING, p.name)) for p in chosen}
            for program in chosen:
                without = futures[program.name].result()
                with_layer = results[program.name]
                print(f"{program.name} without {layer}: {without.status}/{without.stage}: {without.error}")
                assert (without.status, without.error) != (with_layer.status, with_layer.error), program.name
                assert layer not in without.sandbox
        finally:
            executor.close()
