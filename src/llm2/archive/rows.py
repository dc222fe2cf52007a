"""Between Python values and the archive's rows: JSON and numbers as SQLite keeps them, rows back into records."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import time
from typing import Any, Iterable

from llm2.archive.records import CandidateRecord, MessageRecord
from llm2.archive.text import clean_text, clean_value


def to_json(value: Any) -> str:
    def fallback(item: Any) -> Any:
        if hasattr(item, "item"):  # numpy and torch scalars
            return item.item()
        if dataclasses.is_dataclass(item):
            return dataclasses.asdict(item)
        return str(item)

    return json.dumps(clean_value(value), default=fallback, sort_keys=True)


def sql_number(value: Any) -> float | None:
    """A float for SQLite, with None for missing or non-finite values (SQLite would turn NaN into NULL anyway)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def row_metrics(row: sqlite3.Row) -> dict:
    """The metrics JSON; a schema-1 archive opened read-only keeps its KL in a column of its own."""
    metrics = json.loads(row["metrics"])
    if "kl" in row.keys() and row["kl"] is not None:
        metrics.setdefault("kl", row["kl"])
    return metrics


def candidate_record(row: sqlite3.Row) -> CandidateRecord:
    return CandidateRecord(
        id=row["id"], generation=row["generation"], index=row["idx"], proposer=row["proposer"],
        thought=row["thought"], name=row["name"], code=row["code"], code_hash=row["code_hash"],
        status=row["status"], stage=row["stage"], error=row["error"], duplicate_of=row["duplicate_of"],
        fitness=row["fitness"], fitness_std=row["fitness_std"], metrics=row_metrics(row),
        seconds=row["seconds"], prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
        cost_usd=row["cost_usd"], reply_events=tuple(json.loads(row["reply_events"])), feedback=row["feedback"],
        created_at=row["created_at"], finished_at=row["finished_at"],
        sandbox=tuple(json.loads(row["sandbox"])) if "sandbox" in row.keys() else ())


def append_messages(db: sqlite3.Connection, messages: Iterable[tuple[str, str]],
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
