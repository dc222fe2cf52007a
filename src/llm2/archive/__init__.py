"""The run's archive: every candidate, message and evaluation of a discovery, in one SQLite file."""

from llm2.archive.code_hash import normalized_code_hash
from llm2.archive.records import (CANDIDATE_STATUSES, RUN_STATUSES, ArchiveError, CandidateRecord,
                                  EvaluationRecord, MessageRecord, RequestRecord, RunEvent, RunInfo)
from llm2.archive.store import ARCHIVE_FILENAME, SCHEMA_VERSION, Archive, archive_path

__all__ = [
    "ARCHIVE_FILENAME", "CANDIDATE_STATUSES", "RUN_STATUSES", "SCHEMA_VERSION", "Archive", "ArchiveError",
    "CandidateRecord", "EvaluationRecord", "MessageRecord", "RequestRecord", "RunEvent", "RunInfo", "archive_path", "normalized_code_hash",
]
