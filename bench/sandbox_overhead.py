"""What the sandbox costs per candidate: in-process against a warm fork against a fresh interpreter, same job, one run.

    python bench/sandbox_overhead.py [--repeats 5] [--budget 0.1] [--confine-repeats 20]

Ways to evaluate the same DPO job (a tenth of the training budget by default, so fixed costs show), each timed
from submission to the scored result:
  in_process     trusted code in this process, no isolation at all (the floor: ``evaluate_trusted``);
  warm_fork      llm2's sandbox: a warm worker forks a confined child per candidate (every layer), the executor
                 scores in this process (cascade off: its probe costs one quick scoring, see bench/cascade.py);
  no_pid_ns      the same with the PID namespace left out (no relay fork);
  no_uid_drop    the same with the change to uid 65534 left out;
  no_new_layers  the same without the layers of issue 19 (the mount namespace with its tmpfs scratch, and the
                 seccomp allow-list): what they add per evaluation is warm_fork minus this;
  no_cgroup      the same without the optional cgroup (made, joined and removed per candidate where one can be);
  fresh_python   a new ``python -c`` interpreter per candidate that imports torch, loads the task, evaluates;
  file_output_tmpfs    the same task with its weights returned as a file (``Runtime(output="file")``, as large
                 models do): written to the child's size-capped scratch tmpfs, handed to the worker and read
                 through that descriptor once the child is dead (every layer);
  file_output_on_disk  the same, the scratch a directory on disk bound into the child's root (no total-disk cap:
                 how a file output was read before): the tmpfs and its hand-over cost the difference.
The layers are left out as tests do it (LLM2_SANDBOX_SIMULATE_MISSING plus the explicit opt-out), in the worker's
environment only. The rounds are interleaved, so drifting load on a shared machine hits every way alike.

Then the layers alone, in this process (which, like a worker, has imported torch and holds the task's data):
fork a child that runs ``confine`` with every layer, or without the new layers (mount namespace, seccomp allow-list), or
without the PID namespace, or without the uid change, or
without both, reports back and exits; timed from the fork to the report (``confined``) and to the reaped process
(``reaped``: the relay's exit included), against a bare fork that reports at once. Medians in milliseconds.

The last lines are the ratios and the per-candidate cost of the PID namespace and of the uid change.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from llm2.evaluation import EvalJob
from llm2.trusted import evaluate_trusted
from llm2.execution import make_executor
from llm2.sandbox.limits import LAYERS, SIMULATE_ENV, SandboxLimits, confine, end_child, read_roots
from llm2.sandbox.loader import load_function
from llm2.tasks import load_task
from llm2.task_api.base import EvalSetting
from llm2.tasks.preference.catalog import OBJECTIVES

FRESH = """
import torch
torch.set_num_threads(1)
from llm2.trusted import evaluate_trusted
from llm2.tasks import load_task
from llm2.task_api.base import EvalSetting
from llm2.tasks.preference.catalog import OBJECTIVES
task = load_task("preference-synthetic")
setting = EvalSetting(task.parse_settings({{"fitness": "judge"}}), 0, {budget})  # the judge: no frontier traced
print(evaluate_trusted(task, OBJECTIVES["dpo"].code, setting).fitness)
"""

FILE_TASK = """
import dataclasses
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask

class FileOutputPreference(PreferenceSyntheticTask):
    def runtime(self, settings):
        return dataclasses.replace(super().runtime(settings), output="file")
"""
# name -> the scratch's size (0: on disk), for the file-output task
FILE_WAYS = {"file_output_tmpfs": SandboxLimits().scratch_bytes, "file_output_on_disk": 0}
# name -> the layers left out (simulated missing, and allowed to be)
NEW_LAYERS = ("mount_namespace", "seccomp")
SANDBOXED = {"warm_fork": (), "no_pid_ns": ("pid_namespace",), "no_uid_drop": ("unprivileged_user",),
             "no_new_layers": NEW_LAYERS, "no_cgroup": ("cgroup",)}
CONFINE_VARIANTS = {"bare_fork": None, "all_layers": (), "no_new_layers": NEW_LAYERS, "no_pid_ns": ("pid_namespace",),
                    "no_uid_drop": ("unprivileged_user",), "no_pid_ns_no_uid_drop": ("pid_namespace",
                                                                                     "unprivileged_user")}


def sandboxed_executor(task, settings, missing: tuple[str, ...], spec: str | None = None,
                       limits: SandboxLimits | None = None):
    """A one-worker executor whose worker leaves ``missing`` out; started and warm when returned."""
    previous = os.environ.get(SIMULATE_ENV)
    os.environ[SIMULATE_ENV] = ",".join(missing)  # the worker copies this process's environment when it starts
    try:
        executor = make_executor("local", task_spec=spec or task.name, task=task, workers=1, timeout_s=300,
                                 cascade=False, warm_settings=settings,
                                 allow_missing=frozenset(m for m in missing if m in LAYERS),  # cgroup: optional
                                 limits=limits)
        first = executor.submit(EvalJob(OBJECTIVES["dpo"].code, EvalSetting(settings, 0, 0.01))).result()
    finally:
        if previous is None:
            os.environ.pop(SIMULATE_ENV, None)
        else:
            os.environ[SIMULATE_ENV] = previous
    if first.status != "ok":
        executor.close()
        raise SystemExit(f"the sandboxed warm-up failed ({', '.join(missing) or 'every layer'}): {first.error}")
    missing_taken = set(missing) & set(first.sandbox)
    if missing_taken:
        executor.close()
        raise SystemExit(f"layers meant to be left out took: {sorted(missing_taken)}")
    return executor


def confine_once(missing: tuple[str, ...] | None, readable: list[str], limits: SandboxLimits,
                 root: str) -> tuple[float, float]:
    """Seconds from the fork to the child's report, and to its reaping, for one confined (or bare) child."""
    scratch = tempfile.mkdtemp(dir=root)
    os.chmod(scratch, 0o777)
    if missing is not None:
        os.environ[SIMULATE_ENV] = ",".join(missing)  # read by confine, in the child
    read_end, write_end = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read_end)
            if missing is not None:
                confine(Path(scratch), limits, readable, frozenset(missing))
            os.write(write_end, b"x")
        except BaseException as exc:  # noqa: BLE001 - say why and end here, never return into the benchmark
            os.write(write_end, f"!{type(exc).__name__}: {exc}"[:500].encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    answer = os.read(read_end, 512)
    confined = time.perf_counter() - start
    end_child(pid)  # as the runner ends a child that has sent its result: SIGKILL the group, reap it
    reaped = time.perf_counter() - start
    os.close(read_end)
    os.environ.pop(SIMULATE_ENV, None)
    if answer != b"x":
        raise SystemExit(f"confine failed ({missing}): {answer.decode(errors='replace')}")
    return confined, reaped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--confine-repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = load_task("preference-synthetic")
    settings = task.parse_settings({"fitness": "judge"})  # measured on the judge: no dpo frontier traced
    setting = EvalSetting(settings, 0, args.budget)
    task.prepare(settings)
    code = OBJECTIVES["dpo"].code
    fn = load_function(code, task.contract)
    evaluate_trusted(task, fn, setting)  # this process's own warm-up: data loaded, scorer made
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load_before = os.getloadavg()[0]

    def fresh() -> float:
        out = subprocess.run([sys.executable, "-c", FRESH.format(budget=args.budget)], env=env, check=True,
                             capture_output=True, text=True)
        return float(out.stdout.split()[-1])

    executors = {name: sandboxed_executor(task, settings, missing) for name, missing in SANDBOXED.items()}
    file_task = Path(tempfile.mkdtemp(prefix="llm2-bench-file-task-")) / "file_task.py"
    file_task.write_text(FILE_TASK)
    spec = f"{file_task}:FileOutputPreference"
    executors.update({name: sandboxed_executor(load_task(spec), settings, (), spec,
                                               SandboxLimits(timeout_s=300, scratch_bytes=size))
                      for name, size in FILE_WAYS.items()})
    layers = {}

    def sandboxed(name: str):
        def run() -> float | None:
            result = executors[name].submit(EvalJob(code, setting, name)).result()
            if result.status != "ok":
                raise SystemExit(f"{name}: the evaluation failed: {result.error}")
            layers[name] = result.sandbox
            return result.fitness
        return run

    ways = {"in_process": lambda: evaluate_trusted(task, fn, setting).fitness,
            **{name: sandboxed(name) for name in [*SANDBOXED, *FILE_WAYS]}, "fresh_python": fresh}
    rounds: dict[str, list[float]] = {name: [] for name in ways}
    values: dict[str, float] = {}
    try:
        for _ in range(args.repeats):
            for name, run in ways.items():
                start = time.perf_counter()
                values[name] = run()
                rounds[name].append(time.perf_counter() - start)
    finally:
        for executor in executors.values():
            executor.close()
        shutil.rmtree(file_task.parent, ignore_errors=True)
    medians = {name: statistics.median(times) for name, times in rounds.items()}

    readable = read_roots(exclude=task.hidden_paths())
    limits = SandboxLimits(timeout_s=60)
    confine_times: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFINE_VARIANTS}
    with tempfile.TemporaryDirectory(prefix="llm2-bench-confine-") as root:
        os.chmod(root, 0o711)
        for _ in range(args.confine_repeats):
            for name, missing in CONFINE_VARIANTS.items():
                confine_times[name].append(confine_once(missing, readable, limits, root))
    confined = {name: statistics.median(t[0] for t in times) for name, times in confine_times.items()}
    reaped = {name: statistics.median(t[1] for t in times) for name, times in confine_times.items()}

    print(f"cores={os.cpu_count()} load_1min_before={load_before:.2f} load_1min_after={os.getloadavg()[0]:.2f} "
          f"uid={os.getuid()} repeats={args.repeats} budget={args.budget} fitness={values['warm_fork']:.4f}")
    print(f"fitness_agree={len(set(values.values())) == 1} " + " ".join(f"{n}={v:.4f}" for n, v in values.items()))
    for name in [*SANDBOXED, *FILE_WAYS]:
        print(f"{name} layers: {', '.join(layers.get(name, ()))}")
    for name, seconds in medians.items():
        print(f"{name}_s={seconds:.3f} (min {min(rounds[name]):.3f}, max {max(rounds[name]):.3f})")
    print(f"confine alone, medians of {args.confine_repeats} (ms):")
    for name in CONFINE_VARIANTS:
        print(f"  {name}: confined {confined[name] * 1e3:.1f}, reaped {reaped[name] * 1e3:.1f}")
    print(f"sandbox_overhead_s={medians['warm_fork'] - medians['in_process']:.3f}")
    print(f"pid_namespace_cost_end_to_end_s={medians['warm_fork'] - medians['no_pid_ns']:.3f}")
    print(f"uid_drop_cost_end_to_end_s={medians['warm_fork'] - medians['no_uid_drop']:.3f}")
    print(f"new_layers_cost_end_to_end_s={medians['warm_fork'] - medians['no_new_layers']:.3f} (target < 0.1)")
    print(f"cgroup_cost_end_to_end_s={medians['warm_fork'] - medians['no_cgroup']:.3f} (target < 0.1; 0 where"
          " no cgroup can be made)")
    print(f"file_output_tmpfs_cost_end_to_end_s={medians['file_output_tmpfs'] - medians['file_output_on_disk']:.3f}"
          " (target < 0.1)")
    print(f"new_layers_cost_ms={(reaped['all_layers'] - reaped['no_new_layers']) * 1e3:.1f}")
    print(f"confine_all_layers_ms={(reaped['all_layers'] - reaped['bare_fork']) * 1e3:.1f}")
    print(f"pid_namespace_cost_ms={(reaped['all_layers'] - reaped['no_pid_ns']) * 1e3:.1f}")
    print(f"uid_drop_cost_ms={(reaped['all_layers'] - reaped['no_uid_drop']) * 1e3:.1f}")
    print(f"warm_fork_vs_in_process={medians['warm_fork'] / medians['in_process']:.2f}")
    print(f"fresh_python_vs_warm_fork={medians['fresh_python'] / medians['warm_fork']:.2f}")


if __name__ == "__main__":
    main()
