"""Long work says what it is doing: the set-up script names each step, a world being built reports its steps
through ``llm2.progress`` (shown by the command line, on stderr), and nothing is shown where no one listens."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llm2 import progress
from llm2.commands.progress_display import LineReporter
from llm2.tasks.preference_synthetic.config import WorldConfig
from llm2.tasks.preference_synthetic.world import load_world

REPO = Path(__file__).resolve().parents[1]
TINY = WorldConfig(reference_sequences=256, reference_epochs=2, pairs=64, heldout_prompts=16)


class Recorder:
    def __init__(self):
        self.events: list[tuple] = []

    def begin(self, text, total):
        self.events.append(("begin", text, total))

    def update(self, done):
        self.events.append(("update", done))

    def end(self):
        self.events.append(("end",))


def test_building_a_world_reports_each_step_with_how_far_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM2_CACHE_DIR", str(tmp_path))
    recorder = Recorder()
    with progress.showing(recorder):
        load_world(TINY, 5)
    begun = [e[1] for e in recorder.events if e[0] == "begin"]
    assert begun[0].startswith("building preference world 5 (once; cached in")
    assert any("training the reference policy" in text for text in begun)
    assert any("sampling 64 pairs" in text for text in begun)
    training = next(e for e in recorder.events if e[0] == "begin" and "reference policy" in e[1])
    total = training[2]
    assert total == 2 * (256 // TINY.reference_batch_size)
    updates = [e[1] for e in recorder.events if e[0] == "update"]
    assert updates == list(range(1, total + 1))
    assert sum(e[0] == "begin" for e in recorder.events) == sum(e[0] == "end" for e in recorder.events)


def test_steps_show_nothing_and_cost_nothing_without_a_reporter():
    with progress.step("quiet", 3) as advance:
        advance(1)  # no reporter installed: a worker or a library caller sees nothing


def test_the_line_display_prints_each_step_and_each_quarter():
    stream = io.StringIO()
    with progress.showing(LineReporter(stream)):
        with progress.step("outer"):
            with progress.step("inner", 8) as advance:
                for done in range(1, 9):
                    advance(done)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "outer..."
    assert lines[1:5] == ["inner: 0/8", "inner: 2/8", "inner: 4/8", "inner: 6/8"]
    assert lines[5].startswith("inner: 8/8 done in ") and lines[6].startswith("outer: done in ")


@pytest.mark.slow  # the script's last step imports trl and ray
def test_the_setup_script_names_each_step(tmp_path):
    # A copy of the script runs against an interpreter that records pip's arguments instead of installing (the
    # real installs take minutes and the network); every other call goes to the real interpreter.
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    calls = tmp_path / "pip-calls"
    (bin_dir / "python").write_text(
        "#!/bin/sh\n"
        f"if [ \"$1\" = -m ] && [ \"$2\" = pip ]; then echo \"$*\" >> {calls}; exit 0; fi\n"
        f"exec {sys.executable} \"$@\"\n")
    (bin_dir / "python").chmod(0o755)
    result = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    steps = [line for line in result.stderr.splitlines() if line.startswith("setup [")]
    assert [line.split("]")[0] for line in steps] == [f"setup [{n}/5" for n in range(1, 6)]
    assert "using the virtual environment" in steps[0] and "torch is already installed" in steps[2]
    assert "installing llm2 with its extras hf, ray, dev, merging" in steps[3]
    # pip stays quiet (-q), called with the same arguments as before
    assert calls.read_text().splitlines() == ["-m pip install -q --upgrade pip",
                                              "-m pip install -q -e .[hf,ray,dev,merging]"]


@pytest.mark.slow  # builds a small merging world (seconds of training)
def test_building_a_merging_world_reports_the_seed_and_each_expert(tmp_path, monkeypatch):
    from llm2.tasks.merging_synthetic.skills import SKILL_NAMES
    from llm2.tasks.merging_synthetic.world import RECIPES, prepare_world

    monkeypatch.setenv("LLM2_CACHE_DIR", str(tmp_path))
    recorder = Recorder()
    skill = SKILL_NAMES[0]
    with progress.showing(recorder):
        prepare_world(3, (skill,), 0, "small")
    begun = {e[1]: e[2] for e in recorder.events if e[0] == "begin"}
    assert begun["merging world: pre-training the seed model of world 3 (steps)"] == RECIPES["small"].seed_steps
    assert begun[f"merging world: fine-tuning the {skill} expert (steps)"] == RECIPES["small"].expert_steps


def test_the_terminal_display_draws_nested_steps_as_bars():
    from rich.console import Console

    from llm2.commands.progress_display import RichReporter

    stream = io.StringIO()
    reporter = RichReporter(Console(file=stream, force_terminal=True, width=100))
    with progress.showing(reporter):
        with progress.step("building the world"):
            with progress.step("training the reference", 4) as advance:
                for done in range(1, 5):
                    advance(done)
    text = stream.getvalue()
    assert "building the world" in text and "training the reference" in text and "4/4" in text
    assert not reporter.steps and not reporter.progress.live.is_started  # the terminal is handed back
