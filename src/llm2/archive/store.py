"""The run's SQLite store: one file ``DIR/archive.sqlite`` holding the run, its candidates, messages and evaluations.

Durability: WAL journal, a commit per write, ``synchronous=FULL``. A SIGKILL of the writer loses nothing committed
(WAL alone guarantees that); FULL also survives a power cut, and costs one fsync per candidate, which is nothing
beside an evaluation. Readers (``llm2 report``, ``llm2 leaderboard``) open the file concurrently and see the last
committed state; the writer never blocks them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from llm2.archive.code_hash import normalized_code_hash
from llm2.archive.ranking import ranked
from llm2.archive.records import (CANDIDATE_STATUSES, RUN_STATUSES, ArchiveError, CandidateRecord,
                                  EvaluationRecord, MessageRecord, RequestRecord, RunEvent, RunInfo)
from llm2.archive.rows import append_messages, candidate_record, row_metrics, sql_number, to_json
from llm2.archive.schema import SCHEMA_VERSION, connect, create_tables, migrate, validate
from llm2.archive.text import clean_optional, clean_text

ARCHIVE_FILENAME = "archive.sqlite"


def archive_path(run_dir: str | os.PathLike) -> Path:
    """The archive file of a run directory (a path to the file itself is accepted too)."""
    path = Path(run_dir)
    return path if path.suffix == ".sqlite" else path / ARCHIVE_FILENAME


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
            connection = connect(path, readonly=False)
            connection.execute("PRAGMA journal_mode=WAL")
            archive = cls(connection, path, readonly=False)
            with archive._write() as db:
                create_tables(db)
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [("format", "llm2-archive"), ("schema_version", str(SCHEMA_VERSION)),
                                ("task_card", to_json(task_card or {}))])
                db.execute("INSERT INTO run VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (run.run_id, run.task, run.proposer, run.model, to_json(run.config),
                            to_json(run.seeds), to_json(run.versions), run.started_at, run.finished_at,
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
            connection = connect(path, readonly)
            validate(connection, path)
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
        with self._write() as db:
            migrate(db)

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
            db.execute("UPDATE run SET config = ?, model = ? WHERE id = 1", (to_json(config), model))

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
                                                                                     to_json(detail)))

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
                 int(prompt_tokens), int(completion_tokens), float(cost_usd), to_json(list(reply_events)),
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
                (status, stage, error, sql_number(fitness), sql_number(fitness_std), to_json(metrics or {}),
                 sql_number(seconds), feedback, time.time(), to_json(list(sandbox)), candidate_id))
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
                       (original_id, sql_number(fitness), sql_number(fitness_std), to_json(metrics or {}), time.time(),
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
        return candidate_record(rows[0])

    def candidates(self, status: str | Iterable[str] | None = None) -> list[CandidateRecord]:
        """Candidates in index order, optionally only those with the given status (or statuses)."""
        if status is None:
            rows = self._query("SELECT * FROM candidates ORDER BY idx")
        else:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            marks = ", ".join("?" * len(statuses))
            rows = self._query(f"SELECT * FROM candidates WHERE status IN ({marks}) ORDER BY idx", statuses)
        return [candidate_record(row) for row in rows]

    def pending(self) -> list[CandidateRecord]:
        return self.candidates("pending")

    def find_by_hash(self, code_hash: str) -> CandidateRecord | None:
        """The first candidate (any outcome, baselines included) with this code hash that is not itself a duplicate."""
        rows = self._query("SELECT * FROM candidates WHERE code_hash = ? AND status != 'duplicate' ORDER BY idx"
                           " LIMIT 1", (code_hash,))
        return candidate_record(rows[0]) if rows else None

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
        row = (to_json(request), clean_optional(reply), clean_optional(finish_reason), clean_optional(error))
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
            return append_messages(db, [(role, content)], candidate_id)[0]

    def add_turn(self, messages: Iterable[tuple[str, str]], candidate_id: int | None = None) -> list[MessageRecord]:
        """Append messages in one transaction. A candidate's turn is appended once: if the log already holds a
        message of ``candidate_id``, nothing is written (so a resumed run never logs a turn twice)."""
        with self._write() as db:
            if candidate_id is not None and db.execute("SELECT 1 FROM messages WHERE candidate_id = ? LIMIT 1",
                                                       (candidate_id,)).fetchone():
                return []
            return append_messages(db, messages, candidate_id)

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
                (clean_text(candidate_name), code_hash, suite, to_json(dict(setting)), sql_number(fitness),
                 sql_number(seconds), status, clean_optional(error), to_json(metrics or {}), created_at,
                 to_json(list(sandbox))))
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
                status=row["status"], error=row["error"], metrics=row_metrics(row), created_at=row["created_at"],
                sandbox=tuple(json.loads(row["sandbox"])) if "sandbox" in keys else ()))
        return records




def _check_run_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise ArchiveError(f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")


def _check_candidate_status(status: str) -> None:
    if status not in CANDIDATE_STATUSES:
        raise ArchiveError(f"unknown candidate status {status!r}; expected one of {', '.join(CANDIDATE_STATUSES)}")

