"""The SQLite archive on real files: records, duplicates, concurrency across processes, SIGKILL, corruption."""

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from llm2.archive import Archive, ArchiveError, normalized_code_hash
from testkit import make_run

DPO = """
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    \"\"\"DPO.\"\"\"
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    return -F.logsigmoid(beta * logits)
"""


def run_python(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True,
                            text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_create_open_roundtrip(tmp_path):
    with Archive.create(tmp_path / "run", make_run()) as archive:
        assert archive.run == make_run()
        archive.set_run_status("finished", finished_at=1234.5)
    reopened = Archive.open(tmp_path / "run", readonly=True)
    assert reopened.run.status == "finished" and reopened.run.finished_at == 1234.5
    assert reopened.run.config == {"beta": 0.05}
    with pytest.raises(ArchiveError, match="read-only"):
        reopened.add_message("user", "hello")
    reopened.close()


def test_create_refuses_an_existing_archive_and_open_a_missing_one(tmp_path):
    Archive.create(tmp_path, make_run()).close()
    with pytest.raises(ArchiveError, match="already exists"):
        Archive.create(tmp_path, make_run(run_id="run-2"))
    assert Archive.open(tmp_path).run.run_id == "run-1"  # untouched
    with pytest.raises(ArchiveError, match="no llm2 archive"):
        Archive.open(tmp_path / "elsewhere")


def test_run_status_is_checked_and_stamped(tmp_path):
    archive = Archive.create(tmp_path, make_run())
    with pytest.raises(ArchiveError, match="unknown run status"):
        archive.set_run_status("done")
    before = time.time()
    archive.set_run_status("stopped")
    assert archive.run.finished_at >= before
    archive.set_run_status("running")  # resumed
    assert archive.run.finished_at is None and archive.run.status == "running"


def test_candidates_lifecycle(tmp_path):
    archive = Archive.create(tmp_path, make_run())
    baseline = archive.add_candidate(generation=0, proposer="baseline", thought="", name="dpo", code=DPO,
                                     status="baseline")
    first = archive.add_candidate(generation=1, proposer="symbolic", thought="sharper", name="sharp",
                                  code=DPO.replace("beta *", "2 * beta *"), prompt_tokens=120,
                                  completion_tokens=80, cost_usd=0.002, reply_events=("repaired: code fence",))
    second = archive.add_candidate(generation=1, proposer="symbolic", thought="broken", name="broken",
                                   code="def loss(:")
    assert [c.index for c in (baseline, first, second)] == [0, 1, 2]
    assert first.status == "pending" and first.reply_events == ("repaired: code fence",)
    assert first.prompt_tokens == 120 and first.cost_usd == pytest.approx(0.002)
    assert [c.id for c in archive.pending()] == [first.id, second.id]

    archive.finish_candidate(baseline.id, status="baseline", stage="done", error=None, fitness=0.90,
                             fitness_std=0.01, metrics={"reward": 0.9, "kl": 6.6}, seconds=1.5, feedback=None)
    done = archive.finish_candidate(first.id, status="ok", stage="done", error=None, fitness=0.93,
                                    fitness_std=0.02, metrics={"reward": 0.93, "steps": 188},
                                    seconds=1.7, feedback="fitness 0.93", sandbox=("seccomp", "landlock"))
    assert done.fitness == 0.93 and done.metrics == {"reward": 0.93, "steps": 188} and done.finished_at
    assert done.sandbox == ("seccomp", "landlock") and done.value("reward") == 0.93 and done.value("nope") is None
    failed = archive.finish_candidate(second.id, status="invalid", stage="static", error="syntax error",
                                      fitness=float("nan"), fitness_std=None, metrics=None, seconds=0.01,
                                      feedback="rejected")
    assert failed.fitness is None and failed.metrics == {}
    archive.set_feedback(second.id, "rejected: syntax error at line 1")
    assert archive.candidate(second.id).feedback == "rejected: syntax error at line 1"

    assert archive.pending() == []
    assert [c.name for c in archive.candidates()] == ["dpo", "sharp", "broken"]
    assert [c.name for c in archive.candidates("invalid")] == ["broken"]
    assert [c.name for c in archive.candidates(("ok", "baseline"))] == ["dpo", "sharp"]
    assert [c.name for c in archive.best(5)] == ["sharp"]
    assert [c.name for c in archive.best(5, include_baselines=True)] == ["sharp", "dpo"]
    assert [c.name for c in archive.best(1, include_baselines=True)] == ["sharp"]

    with pytest.raises(ArchiveError, match="unknown candidate status"):
        archive.add_candidate(generation=1, proposer="x", thought="", name="x", code="", status="great")
    with pytest.raises(ArchiveError, match="no candidate with id 99"):
        archive.finish_candidate(99, status="ok", stage="done", error=None, fitness=1, fitness_std=0,
                                 metrics={}, seconds=1, feedback=None)


def test_duplicates_are_found_by_normalised_hash(tmp_path):
    archive = Archive.create(tmp_path, make_run())
    original = archive.add_candidate(generation=0, proposer="baseline", thought="", name="dpo", code=DPO,
                                     status="baseline")
    renamed = DPO.replace("logits", "margin").replace("def loss", "def my_dpo").replace('"""DPO."""', "# dpo")
    found = archive.find_by_hash(normalized_code_hash(renamed))
    assert found is not None and found.id == original.id
    duplicate = archive.add_candidate(generation=1, proposer="symbolic", thought="", name="again", code=renamed,
                                      status="duplicate", duplicate_of=original.id)
    assert duplicate.duplicate_of == original.id and duplicate.code_hash == original.code_hash
    assert archive.find_by_hash(duplicate.code_hash).id == original.id  # never the duplicate itself
    assert archive.find_by_hash(normalized_code_hash(DPO.replace("beta *", "0.5 * beta *"))) is None


def test_hash_normalisation():
    base = normalized_code_hash(DPO)
    variants = [
        DPO.replace("logits", "z"),  # local variable renamed
        DPO.replace("def loss", "def discovered_loss"),  # function renamed
        DPO.replace('"""DPO."""', '"""A totally different docstring."""'),
        DPO.replace('    """DPO."""\n', ""),  # no docstring
        DPO.replace("return -F", "# the DPO objective\n    return  -F"),  # comment and spacing
        "\n\n" + DPO.replace("(policy_chosen_logps - reference_chosen_logps)",
                              "(\n        policy_chosen_logps\n        - reference_chosen_logps\n    )"),
    ]
    for variant in variants:
        assert normalized_code_hash(variant) == base, variant
    assert normalized_code_hash(DPO.replace("beta *", "2.0 * beta *")) != base  # a changed constant
    assert normalized_code_hash(DPO.replace("-F.logsigmoid", "F.softplus")) != base
    # Argument names are the contract's: swapping which argument is used changes the hash.
    assert normalized_code_hash(DPO.replace("policy_chosen_logps -", "policy_rejected_logps -", 1)) != base
    # Helper functions and their locals are normalised too.
    helper = "def helper(x):\n    y = x * 2\n    return y\n\ndef loss(a):\n    t = helper(a)\n    return t\n"
    renamed_helper = helper.replace("helper", "double").replace("y", "w").replace("t =", "u =").replace("n t", "n u")
    assert normalized_code_hash(helper) == normalized_code_hash(renamed_helper)


def test_hash_of_unparsable_code_normalises_whitespace():
    broken = "def loss(:\n    return x"
    assert normalized_code_hash(broken) == normalized_code_hash("def   loss(:\n\n      return x  ")
    assert normalized_code_hash(broken) != normalized_code_hash("def loss(:\n    return y")


def test_messages_keep_their_order(tmp_path):
    archive = Archive.create(tmp_path, make_run())
    candidate = archive.add_candidate(generation=1, proposer="p", thought="", name="c", code="x = 1")
    for role, content in [("system", "rules"), ("user", "baselines"), ("assistant", "{...}")]:
        archive.add_message(role, content, candidate_id=candidate.id if role == "assistant" else None)
    messages = Archive.open(tmp_path, readonly=True).messages()
    assert [(m.position, m.role, m.content) for m in messages] == [(0, "system", "rules"), (1, "user", "baselines"),
                                                                   (2, "assistant", "{...}")]
    assert messages[2].candidate_id == candidate.id and messages[0].candidate_id is None


def test_evaluations_store_settings_for_frontiers(tmp_path):
    archive = Archive.create(tmp_path, make_run())
    for beta in (0.01, 0.1):
        archive.add_evaluation(candidate_name="dpo", code_hash="h1", suite="heldout",
                               setting={"beta": beta, "world_seed": 3, "seed": 1}, fitness=0.8 + beta,
                               seconds=1.0, status="ok", error=None, metrics={"reward": 0.8, "kl": 5.0},
                               sandbox=("seccomp",))
    archive.add_evaluation(candidate_name="x", code_hash="h2", suite="evaluate", setting={"beta": 0.05},
                           fitness=None, seconds=0.2, status="failed", error="diverged")
    heldout = archive.evaluations("heldout")
    assert [(e.setting["beta"], e.setting["world_seed"], e.fitness) for e in heldout] == [(0.01, 3, 0.81),
                                                                                         (0.1, 3, 0.9)]
    assert heldout[0].candidate_name == "dpo" and heldout[0].value("kl") == 5.0 and heldout[0].sandbox == ("seccomp",)
    assert [e.status for e in archive.evaluations()] == ["ok", "ok", "failed"]
    assert archive.evaluations("evaluate")[0].error == "diverged"


def test_threads_sharing_one_archive_get_unique_indexes(tmp_path):
    archive = Archive.create(tmp_path, make_run())

    def add_some():
        for i in range(20):
            archive.add_candidate(generation=1, proposer="p", thought="", name=f"c{i}", code=f"x = {i}")

    threads = [threading.Thread(target=add_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c.index for c in archive.candidates()) == list(range(80))


WRITER = """
import sys, time
from llm2.archive import Archive
archive = Archive.open(sys.argv[1])
for i in range(int(sys.argv[2])):
    c = archive.add_candidate(generation=1, proposer=sys.argv[3], thought="", name=f"c{i}", code=f"x = {i}")
    archive.finish_candidate(c.id, status="ok", stage="done", error=None, fitness=i / 100, fitness_std=0.0,
                             metrics={"i": i}, seconds=0.001, feedback=None)
    archive.add_message("user", f"result {i}", candidate_id=c.id)
    time.sleep(0.002)
"""


def test_reader_process_sees_consistent_snapshots_while_writers_write(tmp_path):
    Archive.create(tmp_path, make_run()).close()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "60", name],
                                stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    seen_counts = []
    while any(w.poll() is None for w in writers):
        reader = Archive.open(tmp_path, readonly=True)  # the report opens the archive afresh like this
        candidates = reader.candidates()
        messages = reader.messages()
        reader.close()
        seen_counts.append(len(candidates))
        assert [c.index for c in candidates] == list(range(len(candidates)))
        assert all(c.status in ("pending", "ok") for c in candidates)
        assert [m.position for m in messages] == list(range(len(messages)))
        time.sleep(0.01)
    for writer in writers:
        assert writer.wait() == 0, writer.stderr.read()
    assert seen_counts == sorted(seen_counts)  # never goes back in time
    assert any(0 < count < 120 for count in seen_counts)  # it did read mid-run
    final = Archive.open(tmp_path, readonly=True)
    assert len(final.candidates("ok")) == 120 and len(final.messages()) == 120
    assert sorted(c.index for c in final.candidates()) == list(range(120))
    assert {c.proposer for c in final.candidates()} == {"a", "b"}


def test_sigkilled_writer_loses_nothing_committed(tmp_path):
    Archive.create(tmp_path, make_run()).close()
    script = """
        import os, signal, sqlite3, sys
        from llm2.archive import Archive
        archive = Archive.open(sys.argv[1])
        for i in range(25):
            c = archive.add_candidate(generation=1, proposer="p", thought=f"idea {i}", name=f"c{i}", code=f"x={i}")
            if i < 24:
                archive.finish_candidate(c.id, status="ok", stage="done", error=None, fitness=i / 10,
                                         fitness_std=0.0, metrics={}, seconds=0.1, feedback=f"fb {i}")
            archive.add_message("assistant", f"reply {i}", candidate_id=c.id)
        # A transaction in flight when the process dies must vanish without a trace.
        raw = sqlite3.connect(os.path.join(sys.argv[1], "archive.sqlite"), isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("UPDATE candidates SET status = 'failed'")
        print("committed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """
    result = run_python(script, str(tmp_path), check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout.strip() == "committed"
    # A reader first (``llm2 leaderboard`` on a crashed run), before any writer has recovered the WAL.
    reader = Archive.open(tmp_path, readonly=True)
    assert len(reader.candidates("ok")) == 24 and reader.messages()[-1].content == "reply 24"
    reader.close()
    archive = Archive.open(tmp_path)  # the writer's lock died with it: a new writer can go on
    candidates = archive.candidates()
    assert len(candidates) == 25 and len(archive.messages()) == 25
    assert [c.status for c in candidates] == ["ok"] * 24 + ["pending"]
    assert [c.id for c in archive.pending()] == [candidates[-1].id]
    assert candidates[23].fitness == 2.3 and candidates[23].feedback == "fb 23"
    archive.add_candidate(generation=2, proposer="p", thought="", name="after", code="x = 99")
    assert archive.candidates()[-1].index == 25


def test_garbage_and_empty_files_give_clear_errors(tmp_path):
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "archive.sqlite").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(ArchiveError, match="not a readable llm2 archive"):
        Archive.open(tmp_path / "garbage")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "archive.sqlite").write_bytes(b"")
    with pytest.raises(ArchiveError, match="not an llm2 archive"):
        Archive.open(tmp_path / "empty", readonly=True)


def test_foreign_sqlite_file_is_refused(tmp_path):
    foreign = sqlite3.connect(tmp_path / "archive.sqlite")
    foreign.execute("CREATE TABLE t (x)")
    foreign.commit()
    foreign.close()
    with pytest.raises(ArchiveError, match="not an llm2 archive"):
        Archive.open(tmp_path)


def test_newer_schema_is_refused(tmp_path):
    Archive.create(tmp_path, make_run()).close()
    raw = sqlite3.connect(tmp_path / "archive.sqlite")
    raw.execute("PRAGMA user_version=99")
    raw.commit()
    raw.close()
    with pytest.raises(ArchiveError, match="newer than this llm2 reads"):
        Archive.open(tmp_path)


def test_corrupt_archive_gives_a_clear_error(tmp_path):
    archive = Archive.create(tmp_path, make_run())
    for i in range(30):
        archive.add_candidate(generation=1, proposer="p", thought="x" * 3000, name=f"c{i}", code=f"x = {i}")
    archive.close()  # checkpoints the WAL into the main file
    path = tmp_path / "archive.sqlite"
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096
    page_size = int.from_bytes(data[16:18], "big")
    for page in range(2, len(data) // page_size):  # scribble over every page but the header page
        data[page * page_size + 10: page * page_size + 200] = b"\xff" * 190
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="corrupt|not a readable"):
        Archive.open(tmp_path)


def test_truncated_archive_gives_a_clear_error(tmp_path):
    archive = Archive.create(tmp_path, make_run())
    for i in range(30):
        archive.add_candidate(generation=1, proposer="p", thought="y" * 3000, name=f"c{i}", code=f"x = {i}")
    archive.close()
    path = tmp_path / "archive.sqlite"
    path.write_bytes(path.read_bytes()[: 3 * 4096])
    with pytest.raises(ArchiveError, match="corrupt|not a readable"):
        Archive.open(tmp_path)


def test_requests_are_recorded_as_they_arrive_and_claimed_by_their_candidate(tmp_path):
    archive = Archive.create(tmp_path, make_run())
    asked = {"messages": [{"role": "user", "content": "go"}], "model": "m", "temperature": 0.8, "seed": 7}
    first = archive.record_request(index=0, attempt=0, request=asked, reply="not json", finish_reason="stop",
                                   prompt_tokens=10, completion_tokens=5, cost_usd=0.01)
    second = archive.record_request(index=0, attempt=1, request=asked, reply='{"thought": ...}', prompt_tokens=12,
                                    completion_tokens=6, cost_usd=0.02)
    archive.record_request(index=1, attempt=0, request=asked, reply=None, error="HTTP 500")
    assert archive.spent_usd() == pytest.approx(0.03)
    assert [r.attempt for r in archive.requests(index=0, unlinked=True)] == [0, 1]
    assert archive.requests(index=0)[0].request == asked and archive.requests(index=1)[0].error == "HTTP 500"
    candidate = archive.add_candidate(generation=1, proposer="p", thought="t", name="n", code="x = 1",
                                      request_ids=(first.id, second.id))
    assert archive.requests(index=0, unlinked=True) == []
    assert {r.candidate_id for r in archive.requests(index=0)} == {candidate.id}


def test_a_turn_is_logged_once_in_one_transaction(tmp_path):
    archive = Archive.create(tmp_path, make_run())
    candidate = archive.add_candidate(generation=1, proposer="p", thought="", name="c", code="x = 1",
                                      status="invalid", feedback="rejected")
    assert candidate.feedback == "rejected" and candidate.finished_at is not None
    turn = [("assistant", "reply"), ("user", "rejected")]
    assert len(archive.add_turn(turn, candidate.id)) == 2
    assert archive.add_turn(turn, candidate.id) == []  # a resumed run appends nothing twice
    assert [(m.role, m.content) for m in archive.messages()] == turn


def test_run_events_task_card_and_config_changes(tmp_path):
    archive = Archive.create(tmp_path, make_run(), task_card={"name": "t", "reference_baseline": "dpo"})
    archive.add_run_event("resumed", {"changed": {"generations": {"from": 2, "to": 3}}})
    archive.set_run_config({"generations": 3}, "other-model")
    reopened = Archive.open(tmp_path, readonly=True)
    assert reopened.task_card == {"name": "t", "reference_baseline": "dpo"}
    assert [(e.kind, e.detail["changed"]["generations"]["to"]) for e in reopened.run_events()] == [("resumed", 3)]
    assert reopened.run.config == {"generations": 3} and reopened.run.model == "other-model"


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE run (
    id INTEGER PRIMARY KEY CHECK (id = 1), run_id TEXT NOT NULL, task TEXT NOT NULL, proposer TEXT NOT NULL,
    model TEXT NOT NULL, config TEXT NOT NULL, seeds TEXT NOT NULL, versions TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL, status TEXT NOT NULL);
CREATE TABLE candidates (
    id INTEGER PRIMARY KEY AUTOINCREMENT, generation INTEGER NOT NULL, idx INTEGER NOT NULL UNIQUE,
    proposer TEXT NOT NULL, thought TEXT NOT NULL, name TEXT NOT NULL, code TEXT NOT NULL,
    code_hash TEXT NOT NULL, status TEXT NOT NULL, stage TEXT, error TEXT,
    duplicate_of INTEGER REFERENCES candidates(id), fitness REAL, fitness_std REAL, kl REAL,
    metrics TEXT NOT NULL DEFAULT '{}', seconds REAL, prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0,
    reply_events TEXT NOT NULL DEFAULT '[]', feedback TEXT, created_at REAL NOT NULL, finished_at REAL);
CREATE INDEX candidates_by_hash ON candidates (code_hash, idx);
CREATE INDEX candidates_by_status ON candidates (status, idx);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, position INTEGER NOT NULL UNIQUE, role TEXT NOT NULL,
    content TEXT NOT NULL, candidate_id INTEGER REFERENCES candidates(id), created_at REAL NOT NULL);
CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, candidate_name TEXT NOT NULL, code_hash TEXT NOT NULL,
    suite TEXT NOT NULL, setting TEXT NOT NULL, fitness REAL, kl REAL, seconds REAL, status TEXT NOT NULL,
    error TEXT, metrics TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL);
CREATE INDEX evaluations_by_suite ON evaluations (suite, id);
"""


def test_a_schema_1_archive_is_read_and_migrated(tmp_path):
    path = tmp_path / "archive.sqlite"
    db = sqlite3.connect(path)
    for statement in SCHEMA_1.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA application_id=1819045170")
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO run VALUES (1, 'r', 'preference-synthetic', 'symbolic', '', '{}', '{}', '{}', 1.0, 2.0,"
               " 'finished')")
    db.execute("INSERT INTO candidates (generation, idx, proposer, thought, name, code, code_hash, status, fitness,"
               " kl, metrics, created_at) VALUES (1, 0, 'p', '', 'old', 'x = 1', 'h', 'ok', 0.9, 4.2,"
               " '{\"reward_std\": 0.1}', 1.0)")
    db.execute("INSERT INTO evaluations (candidate_name, code_hash, suite, setting, fitness, kl, status,"
               " created_at) VALUES ('old', 'h', 'heldout', '{\"beta\": 0.1}', 0.8, 3.0, 'ok', 1.0)")
    db.commit()
    db.close()
    readonly = Archive.open(tmp_path, readonly=True)  # read as it is, without writing
    assert readonly.candidates()[0].value("kl") == 4.2 and readonly.requests() == []
    readonly.close()
    migrated = Archive.open(tmp_path)
    assert migrated.candidates()[0].metrics == {"reward_std": 0.1, "kl": 4.2}
    assert migrated.evaluations()[0].value("kl") == 3.0
    migrated.record_request(index=1, attempt=0, request={}, reply="r", cost_usd=0.5)
    assert migrated.spent_usd() == 0.5
    migrated.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 5
    tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"fingerprints", "curves", "island_members", "migrations", "elites"} <= tables  # schemas 3-5, one migration
    assert "kl" not in [row[1] for row in raw.execute("PRAGMA table_info(candidates)")]
