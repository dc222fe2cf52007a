"""The run's SQLite store: one file ``DIR/archive.sqlite`` holding the run, its candidates, messages and evaluations.

Durability: WAL journal, a commit per write, ``synchronous=FULL``. A SIGKILL of the writer loses nothing committed
(WAL alone guarantees that); FULL also survives a power cut, and costs one fsync per candidate, which is nothing
beside an evaluation. Readers (``llm2 report``, ``llm2 leaderboard``) open the file concurrently and see the last
committed state; the writer never blocks them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import quote

from llm2.archive.code_hash import normalized_code_hash
from llm2.archive.ranking import ranked
from llm2.archive.records import (CANDIDATE_STATUSES, RUN_STATUSES, ArchiveError, CandidateRecord,
                                  EvaluationRecord, MessageRecord, RequestRecord, RunEvent, RunInfo)
from llm2.archive.text import clean_optional, clean_text, clean_value

ARCHIVE_FILENAME = "archive.sqlite"
APPLICATION_ID = 0x6C6C6D32  # "llm2" in the SQLite header: tells our files from any other SQLite file
SCHEMA_VERSION = 5
BUSY_TIMEOUT_MS = 30_000

# Tables schema 2 added to schema 1 (also run by the migration of a schema-1 archive).
_SCHEMA_2_ADDITIONS = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, idx INTEGER NOT NULL, attempt INTEGER NOT NULL,
    candidate_id INTEGER REFERENCES candidates(id), request TEXT NOT NULL, reply TEXT, finish_reason TEXT,
    error TEXT, prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE INDEX requests_by_index ON requests (idx, attempt);
CREATE TABLE run_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
"""

# Schema 3: what the search keeps beside the candidates (llm2.archive.search_tables): behavioural fingerprints (and
# which earlier candidate a behavioural duplicate behaves like) and the task's small training curves.
_SCHEMA_3_ADDITIONS = """;
CREATE TABLE fingerprints (
    candidate_id INTEGER PRIMARY KEY REFERENCES candidates(id), vector TEXT NOT NULL,
    same_as INTEGER REFERENCES candidates(id));
CREATE TABLE curves (
    candidate_id INTEGER NOT NULL REFERENCES candidates(id), seed INTEGER NOT NULL, curves TEXT NOT NULL,
    PRIMARY KEY (candidate_id, seed));
"""

# Schema 4: the population (llm2.archive.population_tables): the island of each proposal (by index), its parents,
# and the migrations and resets between islands.
_SCHEMA_4_ADDITIONS = """;
CREATE TABLE island_members (
    id INTEGER PRIMARY KEY AUTOINCREMENT, island INTEGER NOT NULL, idx INTEGER NOT NULL, via TEXT NOT NULL,
    parents TEXT NOT NULL DEFAULT '[]', migration INTEGER, active INTEGER NOT NULL DEFAULT 1);
CREATE INDEX island_members_by_island ON island_members (island, id);
CREATE TABLE migrations (
    generation INTEGER PRIMARY KEY, at REAL NOT NULL, detail TEXT NOT NULL);
"""

# Schema 5: the MAP-Elites grid (llm2.archive.elites): the best candidate of each behaviour cell.
_SCHEMA_5_ADDITIONS = """;
CREATE TABLE elites (
    cell TEXT PRIMARY KEY, candidate_id INTEGER NOT NULL REFERENCES candidates(id), fitness REAL NOT NULL);
"""

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE run (
    id INTEGER PRIMARY KEY CHECK (id = 1), run_id TEXT NOT NULL, task TEXT NOT NULL, proposer TEXT NOT NULL,
    model TEXT NOT NULL, config TEXT NOT NULL, seeds TEXT NOT NULL, versions TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL, status TEXT NOT NULL);
CREATE TABLE candidates (
    id INTEGER PRIMARY KEY AUTOINCREMENT, generation INTEGER NOT NULL, idx INTEGER NOT NULL UNIQUE,
    proposer TEXT NOT NULL, thought TEXT NOT NULL, name TEXT NOT NULL, code TEXT NOT NULL,
    code_hash TEXT NOT NULL, status TEXT NOT NULL, stage TEXT, error TEXT,
    duplicate_of INTEGER REFERENCES candidates(id), fitness REAL, fitness_std REAL,
    metrics TEXT NOT NULL DEFAULT '{}', seconds REAL, prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0,
    reply_events TEXT NOT NULL DEFAULT '[]', feedback TEXT, created_at REAL NOT NULL, finished_at REAL,
    sandbox TEXT NOT NULL DEFAULT '[]');
CREATE INDEX candidates_by_hash ON candidates (code_hash, idx);
CREATE INDEX candidates_by_status ON candidates (status, idx);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, position INTEGER NOT NULL UNIQUE, role TEXT NOT NULL,
    content TEXT NOT NULL, candidate_id INTEGER REFERENCES candidates(id), created_at REAL NOT NULL);
CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, candidate_name TEXT NOT NULL, code_hash TEXT NOT NULL,
    suite TEXT NOT NULL, setting TEXT NOT NULL, fitness REAL, seconds REAL, status TEXT NOT NULL,
    error TEXT, metrics TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL, sandbox TEXT NOT NULL DEFAULT '[]');
CREATE INDEX evaluations_by_suite ON evaluations (suite, id);
""" + _SCHEMA_2_ADDITIONS + _SCHEMA_3_ADDITIONS + _SCHEMA_4_ADDITIONS + _SCHEMA_5_ADDITIONS



def archive_path(run_dir: str | os.PathLike) -> Path:
    """The archive file of a run directory (a path to the file itself is accepted too)."""
    path = Path(run_dir)
    return path if path.suffix == ".sqlite" else path / ARCHIVE_FILENAME


def _to_json(value: Any) -> str:
    def fallback(item: Any) -> Any:
        if hasattr(item, "item"):  # numpy and torch scalars
            return item.item()
        if dataclasses.is_dataclass(item):
            return dataclasses.asdict(item)
        return str(item)

    return json.dumps(clean_value(value), default=fallback, sort_keys=True)


def _number(value: Any) -> float | None:
    """A float for SQLite, with None for missing or non-finite values (SQLite would turn NaN into NULL anyway)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class Archive:
    def __init__(self, connection: sqlite3.Connection, path: Path, readonly: bool):
        self._connection = connection
        self._lock = threading.RLock()  # one connection shared by the loop's threads
        self.path = path
        self.readonly = readonly
        self._schema = SCHEMA_VERSION

    # ---- opening -------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: str | os.PathLike, run: RunInfo, task_card: dict | None = None) -> "Archive":
        """Start a new archive for ``run``; refuses to touch an existing one."""
        _check_run_status(run.status)
        path = archive_path(run_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL claims the file atomically, so two runs started on one directory cannot share it.
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            raise ArchiveError(f"an archive already exists at {path}; resume it or choose another directory") \
                from None
        try:
            connection = _connect(path, readonly=False)
            connection.execute("PRAGMA journal_mode=WAL")
            archive = cls(connection, path, readonly=False)
            with archive._write() as db:
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [("format", "llm2-archive"), ("schema_version", str(SCHEMA_VERSION)),
                                ("task_card", _to_json(task_card or {}))])
                db.execute("INSERT INTO run VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (run.run_id, run.task, run.proposer, run.model, _to_json(run.config),
                            _to_json(run.seeds), _to_json(run.versions), run.started_at, run.finished_at,
                            run.status))
        except BaseException:
            path.unlink(missing_ok=True)  # a half-made archive would only block the next attempt
            raise
        return archive

    @classmethod
    def open(cls, run_dir: str | os.PathLike, readonly: bool = False) -> "Archive":
        """Open an existing archive; ArchiveError with the reason when it is missing, foreign or corrupt."""
        path = archive_path(run_dir)
        if not path.is_file():
            raise ArchiveError(f"no llm2 archive at {path}")
        connection = None
        try:
            connection = _connect(path, readonly)
            _validate(connection, path)
        except (sqlite3.DatabaseError, ArchiveError) as exc:
            if connection is not None:
                connection.close()
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{path} is not a readable llm2 archive: {exc}") from None
        archive = cls(connection, path, readonly)
        if not readonly:
            connection.execute("PRAGMA journal_mode=WAL")
            if connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                archive._migrate()
        archive._schema = connection.execute("PRAGMA user_version").fetchone()[0]
        return archive

    def _migrate(self) -> None:
        """Schema 1 -> 2: KL moves into the metrics, requests and run events get their tables, sandbox columns.
        Schema 2 -> 3: the fingerprints and curves tables. Schema 3 -> 4: the island tables.
        Schema 4 -> 5: the elites table."""
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version < 2:
                self._migrate_1_to_2(db)
            additions = ((_SCHEMA_3_ADDITIONS if version < 3 else "") + (_SCHEMA_4_ADDITIONS if version < 4 else "")
                         + _SCHEMA_5_ADDITIONS)
            for statement in additions.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @staticmethod
    def _migrate_1_to_2(db: sqlite3.Connection) -> None:
        for table in ("candidates", "evaluations"):
            for row in db.execute(f"SELECT id, kl, metrics FROM {table} WHERE kl IS NOT NULL").fetchall():
                metrics = {**json.loads(row["metrics"]), "kl": row["kl"]}
                db.execute(f"UPDATE {table} SET metrics = ? WHERE id = ?", (_to_json(metrics), row["id"]))
            db.execute(f"ALTER TABLE {table} DROP COLUMN kl")
            db.execute(f"ALTER TABLE {table} ADD COLUMN sandbox TEXT NOT NULL DEFAULT '[]'")
        for statement in _SCHEMA_2_ADDITIONS.split(";"):
            if statement.strip():
                db.execute(statement)

    @staticmethod
    def exists(run_dir: str | os.PathLike) -> bool:
        return archive_path(run_dir).is_file()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ---- plumbing ------------------------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction; BEGIN IMMEDIATE so index/position counters cannot race another writer."""
        if self.readonly:
            raise ArchiveError(f"{self.path} was opened read-only")
        with self._lock:
            try:
                self._connection.execute("BEGIN IMMEDIATE")
                yield self._connection
                self._connection.execute("COMMIT")
            except BaseException as exc:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError):
                    raise ArchiveError(f"writing {self.path} failed: {exc}") from None
                raise

    def _query(self, sql: str, parameters: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._connection.execute(sql, tuple(parameters)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise ArchiveError(f"reading {self.path} failed: {exc}") from None

    # ---- the run -------------------------------------------------------------------------------------------
    @property
    def run(self) -> RunInfo:
        row = self._query("SELECT * FROM run WHERE id = 1")[0]
        return RunInfo(run_id=row["run_id"], task=row["task"], proposer=row["proposer"], model=row["model"],
                       config=json.loads(row["config"]), seeds=json.loads(row["seeds"]),
                       versions=json.loads(row["versions"]), started_at=row["started_at"],
                       finished_at=row["finished_at"], status=row["status"])

    def set_run_config(self, config: dict, model: str) -> None:
        """The run's current config (a resume may change how it asks; ``run_events`` keeps the history)."""
        with self._write() as db:
            db.execute("UPDATE run SET config = ?, model = ? WHERE id = 1", (_to_json(config), model))

    @property
    def task_card(self) -> dict:
        """The run's task card (llm2.task_api.card.TaskCard as a dict); {} for runs that did not record one."""
        rows = self._query("SELECT value FROM meta WHERE key = 'task_card'")
        return json.loads(rows[0][0]) if rows else {}

    def set_run_status(self, status: str, finished_at: float | None = None) -> None:
        """Set the run's status; an ending status stamps finished_at (now unless given), 'running' clears it."""
        _check_run_status(status)
        if status != "running" and finished_at is None:
            finished_at = time.time()
        with self._write() as db:
            db.execute("UPDATE run SET status = ?, finished_at = ? WHERE id = 1", (status, finished_at))

    def add_run_event(self, kind: str, detail: dict) -> None:
        """Something that changed the run after it started (a resume with other options, ...)."""
        with self._write() as db:
            db.execute("INSERT INTO run_events (at, kind, detail) VALUES (?, ?, ?)", (time.time(), kind,
                                                                                     _to_json(detail)))

    def run_events(self) -> list[RunEvent]:
        if self._schema < 2:
            return []
        return [RunEvent(row["id"], row["at"], row["kind"], json.loads(row["detail"]))
                for row in self._query("SELECT * FROM run_events ORDER BY id")]

    # ---- candidates ----------------------------------------------------------------------------------------
    def add_candidate(self, *, generation: int, proposer: str, thought: str, name: str, code: str,
                      status: str = "pending", prompt_tokens: int = 0, completion_tokens: int = 0,
                      cost_usd: float = 0.0, reply_events: Iterable[str] = (), duplicate_of: int | None = None,
                      error: str | None = None, stage: str | None = None, feedback: str | None = None,
                      request_ids: Iterable[int] = ()) -> CandidateRecord:
        """Record a proposal (or a baseline) in one transaction: assigns its id, its index in the run and its code
        hash, links the requests that produced it, and stores its feedback when it is already known."""
        _check_candidate_status(status)
        # untrusted text, made storable and harmless to show (llm2.archive.text); the code evaluated is the stored one
        proposer, thought, name, code = (clean_text(t) for t in (proposer, thought, name, code))
        error, feedback = clean_optional(error), clean_optional(feedback)
        code_hash = normalized_code_hash(code)
        with self._write() as db:
            index = db.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM candidates").fetchone()[0]
            cursor = db.execute(
                "INSERT INTO candidates (generation, idx, proposer, thought, name, code, code_hash, status, stage,"
                " error, duplicate_of, prompt_tokens, completion_tokens, cost_usd, reply_events, feedback,"
                " created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (generation, index, proposer, thought, name, code, code_hash, status, stage, error, duplicate_of,
                 int(prompt_tokens), int(completion_tokens), float(cost_usd), _to_json(list(reply_events)),
                 feedback, time.time(), None if status == "pending" else time.time()))
            candidate_id = cursor.lastrowid
            for request_id in request_ids:
                db.execute("UPDATE requests SET candidate_id = ? WHERE id = ?", (candidate_id, request_id))
        return self.candidate(candidate_id)

    def next_index(self) -> int:
        """The index the next recorded candidate will get."""
        return self._query("SELECT COALESCE(MAX(idx), -1) + 1 FROM candidates")[0][0]

    def finish_candidate(self, candidate_id: int, *, status: str, stage: str | None, error: str | None,
                         fitness: float | None, fitness_std: float | None, metrics: dict | None,
                         seconds: float | None, feedback: str | None, sandbox: Iterable[str] = ()) -> CandidateRecord:
        """Store the outcome of a candidate's evaluation, in one commit."""
        _check_candidate_status(status)
        if status == "pending":
            raise ArchiveError("a finished candidate cannot be 'pending'")
        error, feedback = clean_optional(error), clean_optional(feedback)
        with self._write() as db:
            cursor = db.execute(
                "UPDATE candidates SET status = ?, stage = ?, error = ?, fitness = ?, fitness_std = ?,"
                " metrics = ?, seconds = ?, feedback = ?, finished_at = ?, sandbox = ? WHERE id = ?",
                (status, stage, error, _number(fitness), _number(fitness_std), _to_json(metrics or {}),
                 _number(seconds), feedback, time.time(), _to_json(list(sandbox)), candidate_id))
            if cursor.rowcount != 1:
                raise ArchiveError(f"no candidate with id {candidate_id}")
        return self.candidate(candidate_id)

    def mark_duplicate(self, candidate_id: int, original_id: int, *, fitness: float | None = None,
                       fitness_std: float | None = None, metrics: dict | None = None) -> None:
        """A pending candidate found to be a duplicate of an earlier one (by behaviour); its score is the
        original's once that is known."""
        with self._write() as db:
            db.execute("UPDATE candidates SET status = 'duplicate', duplicate_of = ?, fitness = ?, fitness_std = ?,"
                       " metrics = ?, finished_at = ? WHERE id = ?",
                       (original_id, _number(fitness), _number(fitness_std), _to_json(metrics or {}), time.time(),
                        candidate_id))

    def set_feedback(self, candidate_id: int, feedback: str) -> None:
        feedback = clean_text(feedback)
        with self._write() as db:
            if db.execute("UPDATE candidates SET feedback = ? WHERE id = ?", (feedback, candidate_id)).rowcount != 1:
                raise ArchiveError(f"no candidate with id {candidate_id}")

    def candidate(self, candidate_id: int) -> CandidateRecord:
        rows = self._query("SELECT * FROM candidates WHERE id = ?", (candidate_id,))
        if not rows:
            raise ArchiveError(f"no candidate with id {candidate_id}")
        return _candidate(rows[0])

    def candidates(self, status: str | Iterable[str] | None = None) -> list[CandidateRecord]:
        """Candidates in index order, optionally only those with the given status (or statuses)."""
        if status is None:
            rows = self._query("SELECT * FROM candidates ORDER BY idx")
        else:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            marks = ", ".join("?" * len(statuses))
            rows = self._query(f"SELECT * FROM candidates WHERE status IN ({marks}) ORDER BY idx", statuses)
        return [_candidate(row) for row in rows]

    def pending(self) -> list[CandidateRecord]:
        return self.candidates("pending")

    def find_by_hash(self, code_hash: str) -> CandidateRecord | None:
        """The first candidate (any outcome, baselines included) with this code hash that is not itself a duplicate."""
        rows = self._query("SELECT * FROM candidates WHERE code_hash = ? AND status != 'duplicate' ORDER BY idx"
                           " LIMIT 1", (code_hash,))
        return _candidate(rows[0]) if rows else None

    def best(self, n: int, include_baselines: bool = False) -> list[CandidateRecord]:
        """The n best scored candidates by fitness (ties: the earlier first)."""
        return ranked(self.candidates(), include_baselines)[:n]

    # ---- requests to the proposer --------------------------------------------------------------------------
    def record_request(self, *, index: int, attempt: int, request: dict, reply: str | None,
                       finish_reason: str | None = None, error: str | None = None, prompt_tokens: int = 0,
                       completion_tokens: int = 0, cost_usd: float = 0.0) -> RequestRecord:
        """Keep one call to the proposer the moment its answer (or its failure) arrives, tokens and cost included.

        The reply's text is cleaned (llm2.archive.text); a reply that still cannot be stored (its numbers are not
        numbers SQLite holds, say) is recorded as malformed, without its text, and the run goes on."""
        row = (_to_json(request), clean_optional(reply), clean_optional(finish_reason), clean_optional(error))
        try:
            cursor = self._insert_request(index, attempt, row, (int(prompt_tokens), int(completion_tokens),
                                                                float(cost_usd)))
        except (ArchiveError, OverflowError, TypeError, ValueError) as exc:
            reason = clean_text(f"malformed reply, not stored: {type(exc).__name__}: {exc}".splitlines()[0])
            cursor = self._insert_request(index, attempt, (row[0], None, None, reason), (0, 0, 0.0))
        return self._requests("WHERE id = ?", (cursor.lastrowid,))[0]

    def _insert_request(self, index: int, attempt: int, texts: tuple, numbers: tuple) -> sqlite3.Cursor:
        with self._write() as db:
            return db.execute(
                "INSERT INTO requests (idx, attempt, request, reply, finish_reason, error, prompt_tokens,"
                " completion_tokens, cost_usd, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (int(index), int(attempt), *texts, *numbers, time.time()))

    def requests(self, index: int | None = None, unlinked: bool = False) -> list[RequestRecord]:
        """Recorded requests in order; of one candidate index, and/or only those no candidate claimed yet."""
        if self._schema < 2:
            return []
        clauses, parameters = [], []
        if index is not None:
            clauses.append("idx = ?")
            parameters.append(int(index))
        if unlinked:
            clauses.append("candidate_id IS NULL")
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._requests(where, tuple(parameters))

    def spent_usd(self) -> float:
        """What every recorded proposer call has cost so far."""
        if self._schema < 2:
            return float(self._query("SELECT COALESCE(SUM(cost_usd), 0) FROM candidates")[0][0])
        return float(self._query("SELECT COALESCE(SUM(cost_usd), 0) FROM requests")[0][0])

    def _requests(self, where: str, parameters: tuple) -> list[RequestRecord]:
        return [RequestRecord(row["id"], row["idx"], row["attempt"], row["candidate_id"], json.loads(row["request"]),
                              row["reply"], row["finish_reason"], row["error"], row["prompt_tokens"],
                              row["completion_tokens"], row["cost_usd"], row["created_at"])
                for row in self._query(f"SELECT * FROM requests {where} ORDER BY id", parameters)]

    # ---- the conversation ----------------------------------------------------------------------------------
    def add_message(self, role: str, content: str, candidate_id: int | None = None) -> MessageRecord:
        with self._write() as db:
            return _append_messages(db, [(role, content)], candidate_id)[0]

    def add_turn(self, messages: Iterable[tuple[str, str]], candidate_id: int | None = None) -> list[MessageRecord]:
        """Append messages in one transaction. A candidate's turn is appended once: if the log already holds a
        message of ``candidate_id``, nothing is written (so a resumed run never logs a turn twice)."""
        with self._write() as db:
            if candidate_id is not None and db.execute("SELECT 1 FROM messages WHERE candidate_id = ? LIMIT 1",
                                                       (candidate_id,)).fetchone():
                return []
            return _append_messages(db, messages, candidate_id)

    def messages(self) -> list[MessageRecord]:
        return [MessageRecord(row["id"], row["position"], row["role"], row["content"], row["candidate_id"],
                              row["created_at"])
                for row in self._query("SELECT * FROM messages ORDER BY position")]

    # ---- held-out and evaluate points ----------------------------------------------------------------------
    def add_evaluation(self, *, candidate_name: str, code_hash: str, suite: str, setting: dict,
                       fitness: float | None, seconds: float | None, status: str, error: str | None,
                       metrics: dict | None = None, sandbox: Iterable[str] = ()) -> EvaluationRecord:
        """Record one objective measured at one setting (a flat dict, EvalSetting.label()) of a suite."""
        created_at = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO evaluations (candidate_name, code_hash, suite, setting, fitness, seconds, status,"
                " error, metrics, created_at, sandbox) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (clean_text(candidate_name), code_hash, suite, _to_json(dict(setting)), _number(fitness),
                 _number(seconds), status, clean_optional(error), _to_json(metrics or {}), created_at,
                 _to_json(list(sandbox))))
        return self._evaluations("WHERE id = ?", (cursor.lastrowid,))[0]

    def evaluations(self, suite: str | None = None) -> list[EvaluationRecord]:
        """Evaluation points in the order they were recorded, optionally of one suite."""
        if suite is None:
            return self._evaluations("", ())
        return self._evaluations("WHERE suite = ?", (suite,))

    def _evaluations(self, where: str, parameters: tuple) -> list[EvaluationRecord]:
        records = []
        for row in self._query(f"SELECT * FROM evaluations {where} ORDER BY id", parameters):
            keys = row.keys()
            records.append(EvaluationRecord(
                id=row["id"], candidate_name=row["candidate_name"], code_hash=row["code_hash"], suite=row["suite"],
                setting=json.loads(row["setting"]), fitness=row["fitness"], seconds=row["seconds"],
                status=row["status"], error=row["error"], metrics=_metrics(row), created_at=row["created_at"],
                sandbox=tuple(json.loads(row["sandbox"])) if "sandbox" in keys else ()))
        return records


def _append_messages(db: sqlite3.Connection, messages: Iterable[tuple[str, str]],
                     candidate_id: int | None) -> list[MessageRecord]:
    position = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM messages").fetchone()[0]
    created_at = time.time()
    written = []
    for role, content in messages:
        content = clean_text(content)
        cursor = db.execute("INSERT INTO messages (position, role, content, candidate_id, created_at)"
                            " VALUES (?, ?, ?, ?, ?)", (position, role, content, candidate_id, created_at))
        written.append(MessageRecord(cursor.lastrowid, position, role, content, candidate_id, created_at))
        position += 1
    return written


def _check_run_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise ArchiveError(f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")


def _check_candidate_status(status: str) -> None:
    if status not in CANDIDATE_STATUSES:
        raise ArchiveError(f"unknown candidate status {status!r}; expected one of {', '.join(CANDIDATE_STATUSES)}")


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                                     isolation_level=None, check_same_thread=False)
    else:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA synchronous=FULL")
    connection.row_factory = sqlite3.Row
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return connection


def _validate(connection: sqlite3.Connection, path: Path) -> None:
    """Raise ArchiveError unless ``connection`` holds an intact llm2 archive of a schema this code reads."""
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    if application_id != APPLICATION_ID:
        raise ArchiveError(f"{path} is not an llm2 archive (an empty or foreign SQLite file)")
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ArchiveError(f"{path} has archive schema {version}, newer than this llm2 reads ({SCHEMA_VERSION});"
                           " upgrade llm2")
    if version < 1:
        raise ArchiveError(f"{path} is an incomplete llm2 archive (its creation never finished)")
    problems = [row[0] for row in connection.execute("PRAGMA quick_check(3)").fetchall()]
    if problems != ["ok"]:
        lines = [line for problem in problems for line in problem.splitlines() if not line.startswith("***")]
        raise ArchiveError(f"{path} is corrupt (SQLite integrity check: {'; '.join(lines[:3])})")


def _metrics(row: sqlite3.Row) -> dict:
    """The metrics JSON; a schema-1 archive opened read-only keeps its KL in a column of its own."""
    metrics = json.loads(row["metrics"])
    if "kl" in row.keys() and row["kl"] is not None:
        metrics.setdefault("kl", row["kl"])
    return metrics


def _candidate(row: sqlite3.Row) -> CandidateRecord:
    return CandidateRecord(
        id=row["id"], generation=row["generation"], index=row["idx"], proposer=row["proposer"],
        thought=row["thought"], name=row["name"], code=row["code"], code_hash=row["code_hash"],
        status=row["status"], stage=row["stage"], error=row["error"], duplicate_of=row["duplicate_of"],
        fitness=row["fitness"], fitness_std=row["fitness_std"], metrics=_metrics(row),
        seconds=row["seconds"], prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
        cost_usd=row["cost_usd"], reply_events=tuple(json.loads(row["reply_events"])), feedback=row["feedback"],
        created_at=row["created_at"], finished_at=row["finished_at"],
        sandbox=tuple(json.loads(row["sandbox"])) if "sandbox" in row.keys() else ())
