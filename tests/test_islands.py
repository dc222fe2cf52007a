"""Islands: each its own conversation and parents (fitness and novelty), migration of the best, reset of the weakest,
every step in the archive and done once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from llm2.archive import Archive
from llm2.archive.population_tables import members, migrations, plan_proposal
from llm2.archive.search_tables import record_fingerprint
from llm2.discovery import islands
from testkit import LLM2, assert_untouched, make_run, start_in_session


def proposal(archive: Archive, island: int, name: str, fitness: float | None, *, generation: int = 1):
    """A proposal planned on ``island``, finished with ``fitness`` (None: still pending), its turn logged."""
    plan_proposal(archive, archive.next_index(), island, ())
    candidate = archive.add_candidate(generation=generation, proposer="test", thought="", name=name,
                                      code=f"def {name}(x):\n    return x\n")
    if fitness is not None:
        candidate = archive.finish_candidate(candidate.id, status="ok", stage="done", error=None, fitness=fitness,
                                             fitness_std=0.0, metrics={}, seconds=1.0, feedback=f"{name} scored")
        archive.add_turn([("assistant", name), ("user", f"{name} scored")], candidate.id)
    return candidate


def new_archive(tmp_path) -> Archive:
    archive = Archive.create(tmp_path, make_run())
    archive.add_candidate(generation=0, proposer="baseline", thought="", name="base", code="def base(x):\n    return x\n",
                          status="ok")
    archive.add_turn([("system", "you invent"), ("user", "the task")])
    return archive


def test_each_island_sees_its_own_conversation_and_history(tmp_path):
    archive = new_archive(tmp_path)
    a, b = proposal(archive, 0, "a", 0.5), proposal(archive, 1, "b", 0.7)
    proposal(archive, 0, "a2", None)  # pending: seen by its island's history (not proposed twice), no turn yet
    zero = islands.IslandView(archive, 0)
    assert [m.content for m in zero.messages()] == ["you invent", "the task", "a", "a scored"]
    assert [c.name for c in zero.candidates()] == ["base", "a", "a2"]
    assert [m.content for m in islands.IslandView(archive, 1).messages()][2:] == ["b", "b scored"]
    history = islands.history(zero, (a,))
    assert [(h.name, h.fitness) for h in history] == [("base", None), ("a", 0.5), ("a2", None)]
    assert b.id not in {c.id for c in zero.candidates()}


def test_parents_are_chosen_for_fitness_and_novelty(tmp_path):
    archive = new_archive(tmp_path)
    best, twin, other = proposal(archive, 0, "best", 0.90), proposal(archive, 0, "twin", 0.89), \
        proposal(archive, 0, "other", 0.80)
    for candidate, vector in ((best, (0.0, 0.0)), (twin, (0.0, 0.01)), (other, (3.0, 3.0))):
        record_fingerprint(archive, candidate.id, vector, None)
    # the twin is second by fitness but behaves like the best: the distinct one is the second parent
    assert [c.name for c in islands.choose_parents(archive, islands.IslandView(archive, 0).candidates())] == [
        "best", "other"]


def test_a_planned_proposal_keeps_its_island_and_parents(tmp_path):
    archive = new_archive(tmp_path)
    first = plan_proposal(archive, 5, 1, (3, 4))
    again = plan_proposal(archive, 5, 0, ())  # asked again after a kill: the recorded plan holds
    assert first == again and again.island == 1 and again.parents == (3, 4)


def test_migration_moves_the_best_round_the_ring_and_resets_the_weakest_once(tmp_path):
    archive = new_archive(tmp_path)
    strong = proposal(archive, 0, "strong", 0.9)
    middle = proposal(archive, 1, "middle", 0.6)
    weak = proposal(archive, 2, "weak", 0.2)
    assert islands.migrate_if_due(archive, 2, 3, every=2) is None  # generation 1 is not a migration step
    step = islands.migrate_if_due(archive, 2, 3, every=1)
    assert step["reset"] == 2
    assert {(m["to"], m["candidate"], m["via"]) for m in step["moves"]} == {
        (1, strong.id, "migrated"), (0, weak.id, "migrated"), (2, strong.id, "reset"), (2, middle.id, "reset")}
    assert [c.name for c in islands.IslandView(archive, 2).candidates()] == ["base", "strong", "middle"]
    assert [c.name for c in islands.IslandView(archive, 0).candidates()] == ["base", "strong", "weak"]
    rows = len(islands.members_of(archive))
    assert islands.migrate_if_due(archive, 2, 3, every=1) is None  # done once: nothing more is written
    assert len(islands.members_of(archive)) == rows and list(migrations(archive)) == [1]
    # the reset island's old member is kept in the archive, inactive
    assert [(m.index, m.active) for m in islands.members_of(archive) if m.island == 2][0] == (weak.index, False)


def test_two_islands_trade_their_best_and_are_never_reset(tmp_path):
    archive = new_archive(tmp_path)
    proposal(archive, 0, "strong", 0.9)
    proposal(archive, 1, "weak", 0.2)
    step = islands.migrate_if_due(archive, 3, 2, every=2)
    assert step["reset"] is None and [m["via"] for m in step["moves"]] == ["migrated", "migrated"]
    assert len(members(archive, 1)) == 2 and len(members(archive, 0)) == 2


# --- a real run, killed with SIGKILL in the middle of a migration step, resumed -------------------------------------

def slow_down_migrations(run_dir, process) -> None:
    """A trigger in the run's own archive that makes each row a migration step inserts cost about a second, so the
    step's transaction stays open long enough to be killed inside (a test's instrument; dropped before resuming)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:  # mode=rw: never create the file the run is about to create
            with sqlite3.connect(f"file:{run_dir / 'archive.sqlite'}?mode=rw", uri=True, timeout=30) as db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("CREATE TABLE pad (x INTEGER)")
                db.executemany("INSERT INTO pad VALUES (?)", [(i,) for i in range(250)])
                db.execute("CREATE TRIGGER slow AFTER INSERT ON island_members WHEN NEW.migration IS NOT NULL BEGIN "
                           "SELECT count(*) FROM pad a, pad b, pad c WHERE a.x + b.x + c.x = -1; END")
            return
        except sqlite3.OperationalError:  # not there yet, or its schema is not
            time.sleep(0.02)
    raise AssertionError("the run's archive did not appear")


def wait_inside_migration(run_dir, process, generation: int, population: int) -> None:
    """Until every proposal of ``generation`` is finished and logged and the run holds the write lock: the only
    write it does then is that generation's migration step."""
    deadline = time.monotonic() + 240
    reader = sqlite3.connect(run_dir / "archive.sqlite", timeout=30)
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        done = reader.execute("SELECT id FROM candidates WHERE generation = ? AND status != 'pending'",
                              (generation,)).fetchall()
        logged = {row[0] for row in reader.execute("SELECT candidate_id FROM messages")}
        if len(done) == population and all(row[0] in logged for row in done):
            probe = sqlite3.connect(run_dir / "archive.sqlite", timeout=0)
            try:  # closed at once: a connection left to the garbage collector would keep its lock meanwhile
                probe.execute("BEGIN IMMEDIATE")
                probe.rollback()
            except sqlite3.OperationalError:  # locked: the step's transaction is open
                reader.close()
                return
            finally:
                probe.close()
        time.sleep(0.02)
    raise AssertionError(f"generation {generation}'s migration step was not seen")


@pytest.mark.slow
def test_sigkill_mid_migration_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    options = ["--task", "classification", "-o", "epochs=10", "--generations", "3", "--population", "3", "--seeds",
               "1", "--seed", "3", "--islands", "3", "--migrate-every", "1", "--workers", "1"]
    first = start_in_session([*LLM2, "discover", "--run-dir", str(run_dir), *options])
    slow_down_migrations(run_dir, first)
    wait_inside_migration(run_dir, first, 1, 3)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    with sqlite3.connect(run_dir / "archive.sqlite") as db:
        db.execute("DROP TRIGGER slow")
    with Archive.open(run_dir, readonly=True) as archive:
        before = archive.candidates()
        assert list(migrations(archive)) == []  # the step was cut short: none of it is there
        assert not [m for m in islands.members_of(archive) if m.via != "proposed"]
        rows_before = islands.members_of(archive)

    second = start_in_session([*LLM2, "discover", "--run-dir", str(run_dir), "--resume", "--workers", "1"])
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    with Archive.open(run_dir, readonly=True) as archive:
        after, rows = archive.candidates(), islands.members_of(archive)
        proposals = [c for c in after if c.generation > 0]
        assert len(proposals) == 9 and sorted(c.index for c in after) == list(range(len(after)))
        assert list(migrations(archive)) == [1, 2]  # each step once, the one cut short done on resume
        planned = sorted(m.index for m in rows if m.via == "proposed")
        assert planned == sorted(c.index for c in proposals)  # every proposal on one island, none twice
        assert [m.island for m in rows if m.via == "proposed"] == [i % 3 for i in range(9)]
        # nothing recorded before the kill is lost or changed, save a reset's marking members inactive
        assert [(m.island, m.index, m.via, m.parents, m.migration) for m in rows[:len(rows_before)]] == [
            (m.island, m.index, m.via, m.parents, m.migration) for m in rows_before]
        for island in range(3):
            roles = [m.role for m in islands.IslandView(archive, island).messages()]
            assert roles[0] == "system" and all(a != b for a, b in zip(roles[1:], roles[2:]))
    assert_untouched([c for c in before if c.status != "pending"], after)


def test_a_schema_3_archive_gains_the_island_tables(tmp_path):
    Archive.create(tmp_path, make_run()).close()
    with sqlite3.connect(tmp_path / "archive.sqlite") as raw:  # as a schema-3 archive was
        raw.execute("DROP TABLE island_members")
        raw.execute("DROP TABLE migrations")
        raw.execute("DROP TABLE elites")
        raw.execute("PRAGMA user_version=3")
    with Archive.open(tmp_path, readonly=True) as old:
        assert members(old) == [] and migrations(old) == {}  # read as it is
    with Archive.open(tmp_path) as migrated:
        plan_proposal(migrated, 1, 0, ())
        assert [m.index for m in members(migrated)] == [1]
