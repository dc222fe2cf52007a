"""MAP-Elites: the task's behaviour descriptors bin candidates, the archive keeps each cell's best (across a reopen),
and parents come from several cells."""

from __future__ import annotations

import subprocess

import pytest

from llm2.archive import Archive
from llm2.archive.elites import elites
from llm2.discovery import elites as map_elites
from llm2.discovery.config import DiscoveryConfig
from llm2.proposers import make_proposer
from llm2.task_api.base import Descriptor
from llm2.tasks import load_task
from testkit import LLM2, make_run

DESCRIPTORS = load_task("preference-synthetic").descriptors
AXES = (Descriptor("kl", "KL", (1.0, 3.0)), Descriptor("naturalness", "naturalness", (0.8,)))


def scored(archive: Archive, name: str, fitness: float, kl: float, naturalness: float):
    candidate = archive.add_candidate(generation=1, proposer="test", thought="", name=name,
                                      code=f"def {name}(x):\n    return x\n")
    return archive.finish_candidate(candidate.id, status="ok", stage="done", error=None, fitness=fitness,
                                    fitness_std=0.0, metrics={"kl": kl, "naturalness": naturalness}, seconds=1.0,
                                    feedback="")


def test_descriptors_bin_candidates_into_their_cells():
    assert map_elites.cell_of({"kl": 0.5, "naturalness": 0.9}, AXES) == (0, 1)
    assert map_elites.cell_of({"kl": 1.0, "naturalness": 0.79}, AXES) == (1, 0)  # an edge opens the next bin
    assert map_elites.cell_of({"kl": 7.0, "naturalness": 0.8}, AXES) == (2, 1)
    assert map_elites.cell_of({"kl": float("nan"), "naturalness": 0.8}, AXES) is None
    assert map_elites.cell_of({"naturalness": 0.8}, AXES) is None


def test_the_best_of_each_cell_is_kept_and_survives_a_reopen(tmp_path):
    with Archive.create(tmp_path, make_run()) as archive:
        weak = scored(archive, "weak", 0.5, 2.0, 0.9)
        strong = scored(archive, "strong", 0.7, 2.5, 0.95)  # same cell as weak, better
        lone = scored(archive, "lone", 0.1, 5.0, 0.5)
        grid = map_elites.update(archive, archive.candidates(), AXES)
        assert [(e.cell, e.candidate_id) for e in grid] == [((1, 1), strong.id), ((2, 0), lone.id)]
        assert weak.id not in {e.candidate_id for e in grid}
    with Archive.open(tmp_path) as resumed:  # a resume offers everything again: the grid stays as it was
        assert elites(resumed) == grid
        assert map_elites.update(resumed, resumed.candidates(), AXES) == grid
        better = scored(resumed, "better", 0.2, 6.0, 0.1)
        after = map_elites.update(resumed, resumed.candidates(), AXES)
        assert [(e.cell, e.candidate_id) for e in after] == [((1, 1), strong.id), ((2, 0), better.id)]


def test_parents_come_from_several_cells_not_only_the_fittest(tmp_path):
    with Archive.create(tmp_path, make_run()) as archive:
        best = scored(archive, "best", 0.9, 2.0, 0.9)
        scored(archive, "second", 0.89, 2.1, 0.9)  # same cell as best: never both
        niches = [scored(archive, f"niche{i}", 0.1, kl, nat) for i, (kl, nat) in
                  enumerate(((0.5, 0.5), (0.5, 0.9), (5.0, 0.5), (5.0, 0.9), (2.0, 0.5)))]
        grid = map_elites.update(archive, archive.candidates(), AXES)
        assert len(grid) == 6
        drawn = [map_elites.choose_parents(grid, archive.candidates(), 2, seed) for seed in range(20)]
        for parents in drawn:
            cells = {map_elites.cell_of(p.metrics, AXES) for p in parents}
            assert len(parents) == 2 and len(cells) == 2
        shown = {p.id for parents in drawn for p in parents}
        assert {n.id for n in niches} & shown and best.id in shown
        assert drawn == [map_elites.choose_parents(grid, archive.candidates(), 2, seed) for seed in range(20)]
        # an island sees only its own members' cells
        assert map_elites.choose_parents(grid, [best], 2, 0) == (best,)


def test_tasks_name_their_axes_and_map_elites_refuses_a_task_without():
    assert [d.key for d in load_task("preference-synthetic").descriptors] == ["kl", "naturalness"]
    assert [d.key for d in load_task("classification").descriptors] == ["ece", "memorised"]
    assert load_task("merging-synthetic").descriptors == ()
    result = subprocess.run([*LLM2, "discover", "--task", "merging-synthetic", "--map-elites"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "names no behaviour descriptors" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_discovery_with_map_elites_fills_the_grid_and_records_the_choice(tmp_path):
    from test_discovery import run_discovery

    from tiny_preference_task import TINY_TASK

    config = DiscoveryConfig(task=TINY_TASK, generations=2, population=2, seeds=1, baselines=("dpo",), islands=2,
                             map_elites=True)
    archive, summary = run_discovery(tmp_path, config, make_proposer("symbolic", seed=0))
    assert summary.status == "finished" and archive.run.config["map_elites"] is True
    grid = elites(archive)
    ok = [c for c in archive.candidates() if c.generation > 0 and c.status == "ok"]
    assert grid and {e.candidate_id for e in grid} <= {c.id for c in ok}
    # every cell a proposal landed in has its elite, the last generation's too (offered once the run ends)
    assert {e.cell for e in grid} == {map_elites.cell_of(c.metrics, DESCRIPTORS) for c in ok} - {None}
    for elite in grid:  # each cell's elite is the best of the evaluated proposals in that cell
        rivals = [c.fitness for c in ok if map_elites.cell_of(c.metrics, DESCRIPTORS) == elite.cell]
        assert elite.fitness == max(rivals)
    archive.close()
    from llm2.report.build import build_report

    page = build_report(tmp_path / "run").read_text(encoding="utf-8")
    assert "The MAP-Elites grid" in page and (tmp_path / "run" / "report" / "elites_grid.png").stat().st_size > 1000


def test_the_grid_figure_colours_the_occupied_cells(tmp_path):
    from llm2.archive.elites import Elite
    from llm2.report.grid import elites_grid_figure

    grid = [Elite((0, 1), 1, 0.7), Elite((2, 0), 2, 0.2)]
    figure = elites_grid_figure(grid, AXES, "judge score", tmp_path)
    assert figure.file == "elites_grid.png" and (tmp_path / "elites_grid.png").stat().st_size > 1000
    assert "judge score" in figure.caption
    assert elites_grid_figure([], AXES, "judge score", tmp_path) is None
    one_axis = elites_grid_figure([Elite((1,), 1, 0.5)], AXES[:1], "fitness", tmp_path / "one")
    assert one_axis is not None
