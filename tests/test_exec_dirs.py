"""The executor's per-run directories (``llm2-exec-*``): a run that was SIGKILLed leaves its directory, and the next
executor start removes it, and nothing else: not a live run's, not one without the marker, never through a link.

Real processes throughout: children make their directories through the code the executor uses, and are SIGKILLed;
the owner of each marker is looked up in the real /proc.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from llm2 import temp_dirs
from llm2.execution import make_executor
from llm2.temp_dirs import MARKER, PREFIX, Owner, make_run_dir, sweep, write_marker

EXAMPLE_TASK = f"{Path(__file__).parent / 'example_task.py'}:RobustRegression"
MAKES_A_DIR = """
import sys
from llm2.temp_dirs import make_run_dir
print(make_run_dir(sys.argv[1]), flush=True)
sys.stdin.read()
"""

def _child(script: str, parent: Path) -> tuple[subprocess.Popen, str]:
    """A child process that made its directory in ``parent`` and now waits (alive) until its stdin closes."""
    child = subprocess.Popen([sys.executable, "-c", script, str(parent)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline().strip()
    assert line, f"the child made no directory (exit code {child.poll()})"
    return child, line


def _kill(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdin.close()
    child.stdout.close()


def _end(child: subprocess.Popen) -> None:
    child.stdin.close()  # EOF: it exits
    child.wait(timeout=10)
    child.stdout.close()


def _here() -> Owner:
    owner = temp_dirs.this_process()
    assert owner is not None and owner.pid == os.getpid()
    return owner


def _marked_dir(parent: Path, owner: Owner) -> Path:
    path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    write_marker(str(path), owner)
    (path / "llm2-worker-x").mkdir()
    (path / "llm2-worker-x" / "worker.log").write_text("log")
    return path


def test_a_killed_runs_directory_is_swept_and_a_live_runs_is_kept(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    killed, killed_dir = _child(MAKES_A_DIR, tmp_path)
    live, live_dir = _child(MAKES_A_DIR, tmp_path)
    try:
        marker = json.loads((Path(killed_dir) / MARKER).read_text())
        assert marker["pid"] == killed.pid and marker["start_ticks"] == temp_dirs.start_ticks(killed.pid)
        (Path(killed_dir) / "llm2-worker-a" / "scratch").mkdir(parents=True)
        (Path(killed_dir) / "llm2-worker-a" / "scratch" / "weights.bin").write_bytes(b"w" * 1000)
        (Path(killed_dir) / "llm2-worker-a" / "to-outside").symlink_to(outside)
        (Path(killed_dir) / "to-outside").symlink_to(outside)
        _kill(killed)

        mine = make_run_dir(str(tmp_path))  # the next start

        assert not Path(killed_dir).exists()
        assert Path(live_dir, MARKER).is_file()
        assert json.loads(Path(mine, MARKER).read_text()) == dataclasses.asdict(_here())
        assert (outside / "precious.txt").read_text() == "keep me"  # the links inside were not followed
        assert sweep(str(tmp_path)) == []  # our own live directory stays too
    finally:
        _end(live)
    assert sweep(str(tmp_path)) == [live_dir]  # its owner has exited since


def test_directories_without_a_marker_or_behind_a_link_are_kept(tmp_path):
    here = _here()
    stale = dataclasses.replace(here, start_ticks=here.start_ticks + 1)  # this pid, a later process: gone
    unmarked = Path(tempfile.mkdtemp(prefix=PREFIX, dir=tmp_path))
    (unmarked / "data").write_text("someone's")
    garbled = _marked_dir(tmp_path, stale)
    (garbled / MARKER).write_text('{"pid": 1, "start_ticks": "soon"')
    a_file = tmp_path / f"{PREFIX}file"
    a_file.write_text("a file")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_marker(str(elsewhere), stale)
    (elsewhere / "precious.txt").write_text("keep me")
    link = tmp_path / f"{PREFIX}x"
    link.symlink_to(elsewhere)
    marker_link = _marked_dir(tmp_path, here)  # the marker itself a link to a stale marker: not read
    os.unlink(marker_link / MARKER)
    (marker_link / MARKER).symlink_to(elsewhere / MARKER)

    assert sweep(str(tmp_path)) == []

    assert (unmarked / "data").read_text() == "someone's"
    assert (garbled / "llm2-worker-x" / "worker.log").exists()
    assert a_file.read_text() == "a file"
    assert link.is_symlink() and (elsewhere / "precious.txt").read_text() == "keep me"
    assert (elsewhere / MARKER).exists()
    assert (marker_link / "llm2-worker-x" / "worker.log").exists()


def test_a_reused_pid_or_an_earlier_boot_does_not_keep_a_directory_but_another_namespace_does(tmp_path):
    live, live_dir = _child(MAKES_A_DIR, tmp_path)
    try:
        ticks = temp_dirs.start_ticks(live.pid)
        owner = Owner(live.pid, ticks, _here().boot_id, _here().pid_namespace)
        reused = _marked_dir(tmp_path, dataclasses.replace(owner, start_ticks=ticks + 1))
        earlier_boot = _marked_dir(tmp_path, dataclasses.replace(owner, boot_id="another-boot"))
        other_namespace = _marked_dir(tmp_path, Owner(2 ** 22 + 1, 0, owner.boot_id, "pid:[1]"))
        same_owner = _marked_dir(tmp_path, owner)

        removed = sweep(str(tmp_path))

        assert sorted(removed) == sorted([str(reused), str(earlier_boot)])
        assert other_namespace.exists() and same_owner.exists() and Path(live_dir).exists()
    finally:
        _end(live)


@pytest.mark.skipif(os.getuid() != 0, reason="only root can make a directory owned by another user")
def test_a_directory_of_another_user_is_kept(tmp_path):
    here = _here()
    theirs = _marked_dir(tmp_path, dataclasses.replace(here, start_ticks=here.start_ticks + 1))
    os.chown(theirs, 65534, 65534)
    assert sweep(str(tmp_path)) == []
    assert (theirs / MARKER).exists()


def test_a_missing_temp_dir_or_a_vanishing_directory_is_no_error(tmp_path):
    assert sweep(str(tmp_path / "absent")) == []
    here = _here()
    stale = _marked_dir(tmp_path, dataclasses.replace(here, start_ticks=here.start_ticks + 1))
    assert temp_dirs._remove(str(stale))
    with pytest.raises(OSError):
        temp_dirs._remove(str(stale))  # a racing sweeper took it first: sweep() ignores this
    assert sweep(str(tmp_path)) == []


def test_an_executor_start_sweeps_what_a_killed_run_left(tmp_path, monkeypatch):
    killed, killed_dir = _child(MAKES_A_DIR, tmp_path)
    live, live_dir = _child(MAKES_A_DIR, tmp_path)
    try:
        _kill(killed)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the executor makes its directory
        with make_executor("local", task_spec=EXAMPLE_TASK, workers=1) as executor:
            assert not Path(killed_dir).exists()
            assert Path(live_dir, MARKER).is_file()
            assert Path(executor._root).parent == tmp_path
            assert json.loads(Path(executor._root, MARKER).read_text()) == dataclasses.asdict(_here())
        assert not Path(executor._root).exists()
    finally:
        _end(live)


MAKES_EVERY_KIND = """
import sys, tempfile
from llm2.temp_dirs import PREFIXES, marked_dir, temporary_dir
for prefix in PREFIXES[1:]:
    marked_dir(prefix, sys.argv[1])
with temporary_dir("llm2-call-", sys.argv[1]) as scratch:
    tempfile.mkdtemp(prefix="llm2-unlisted-", dir=sys.argv[1])  # not a prefix of ours: never swept
    print(scratch, flush=True)
    sys.stdin.read()
"""


def test_every_kind_of_llm2_directory_a_killed_run_leaves_is_swept_and_no_other(tmp_path):
    killed, scratch = _child(MAKES_EVERY_KIND, tmp_path)
    left = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.iterdir())
    assert left == sorted([p.rstrip("-") for p in temp_dirs.PREFIXES[1:]] + ["llm2-call", "llm2-unlisted"])
    _kill(killed)  # in the middle of its confined call: the scratch stays behind
    assert Path(scratch).is_dir()

    mine = make_run_dir(str(tmp_path))  # the next executor start

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([Path(mine).name] + [
        p.name for p in tmp_path.iterdir() if p.name.startswith("llm2-unlisted-")])
    with pytest.raises(AssertionError, match="add it to PREFIXES"):
        temp_dirs.marked_dir("llm2-new-kind-", str(tmp_path))  # a maker the sweep would not know
