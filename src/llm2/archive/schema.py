"""The archive file's schema: the tables a new file gets, how an older file is brought up to date, and the checks
a file passes before it is used.

Adding a table: write its DDL as the next schema's entry of ``ADDITIONS``; ``SCHEMA_VERSION`` follows, a new file
gets the table and an older one gets it on its first writable open.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import quote

from llm2.archive.records import ArchiveError
from llm2.archive.rows import to_json

APPLICATION_ID = 0x6C6C6D32  # "llm2" in the SQLite header: tells our files from any other SQLite file
BUSY_TIMEOUT_MS = 30_000

# The tables of schema 1, in their current shape (schema 2 moved KL into the metrics and added the sandbox columns).
_TABLES_1 = """
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
"""

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
_SCHEMA_3_ADDITIONS = """
CREATE TABLE fingerprints (
    candidate_id INTEGER PRIMARY KEY REFERENCES candidates(id), vector TEXT NOT NULL,
    same_as INTEGER REFERENCES candidates(id));
CREATE TABLE curves (
    candidate_id INTEGER NOT NULL REFERENCES candidates(id), seed INTEGER NOT NULL, curves TEXT NOT NULL,
    PRIMARY KEY (candidate_id, seed));
"""

# Schema 4: the population (llm2.archive.population_tables): the island of each proposal (by index), its parents,
# and the migrations and resets between islands.
_SCHEMA_4_ADDITIONS = """
CREATE TABLE island_members (
    id INTEGER PRIMARY KEY AUTOINCREMENT, island INTEGER NOT NULL, idx INTEGER NOT NULL, via TEXT NOT NULL,
    parents TEXT NOT NULL DEFAULT '[]', migration INTEGER, active INTEGER NOT NULL DEFAULT 1);
CREATE INDEX island_members_by_island ON island_members (island, id);
CREATE TABLE migrations (
    generation INTEGER PRIMARY KEY, at REAL NOT NULL, detail TEXT NOT NULL);
"""

# Schema 5: the MAP-Elites grid (llm2.archive.elites): the best candidate of each behaviour cell.
_SCHEMA_5_ADDITIONS = """
CREATE TABLE elites (
    cell TEXT PRIMARY KEY, candidate_id INTEGER NOT NULL REFERENCES candidates(id), fitness REAL NOT NULL);
"""

# What each schema after the first added, by version.
ADDITIONS = {2: _SCHEMA_2_ADDITIONS, 3: _SCHEMA_3_ADDITIONS, 4: _SCHEMA_4_ADDITIONS, 5: _SCHEMA_5_ADDITIONS}
SCHEMA_VERSION = max(ADDITIONS)


def create_tables(db: sqlite3.Connection) -> None:
    """Every table of the current schema, in a new (empty) archive file, and the header that marks it as ours."""
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    _run_script(db, _TABLES_1)
    for version in sorted(ADDITIONS):
        _run_script(db, ADDITIONS[version])


def migrate(db: sqlite3.Connection) -> None:
    """Bring an older archive to the current schema, inside the caller's transaction. Schema 1 -> 2 also moves KL
    into the metrics and adds the sandbox columns; every later step only adds its tables."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version < 2:
        _migrate_1_to_2(db)
        version = 2
    for added in sorted(ADDITIONS):
        if added > version:
            _run_script(db, ADDITIONS[added])
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    for table in ("candidates", "evaluations"):
        for row in db.execute(f"SELECT id, kl, metrics FROM {table} WHERE kl IS NOT NULL").fetchall():
            metrics = {**json.loads(row["metrics"]), "kl": row["kl"]}
            db.execute(f"UPDATE {table} SET metrics = ? WHERE id = ?", (to_json(metrics), row["id"]))
        db.execute(f"ALTER TABLE {table} DROP COLUMN kl")
        db.execute(f"ALTER TABLE {table} ADD COLUMN sandbox TEXT NOT NULL DEFAULT '[]'")
    _run_script(db, ADDITIONS[2])


def _run_script(db: sqlite3.Connection, ddl: str) -> None:
    for statement in ddl.split(";"):
        if statement.strip():
            db.execute(statement)


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                                     isolation_level=None, check_same_thread=False)
    else:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA synchronous=FULL")
    connection.row_factory = sqlite3.Row
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return connection


def validate(connection: sqlite3.Connection, path: Path) -> None:
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
