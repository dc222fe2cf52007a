"""The LLM judge: single-answer grading on a 1-10 scale (as MT-Bench grades single answers), through any
OpenAI-compatible endpoint. Used by the trusted scorer only: the judge's key is read from the environment of the
main process and never reaches a worker (their environment is stripped of anything named like a key)."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from llm2.tasks.preference_hf.models import one_line

DEFAULT_PROMPT = Path(__file__).with_name("judge_prompt.txt")
PARALLEL_REQUESTS = 8
_RATING = (re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]"), re.compile(r"[Rr]ating:\s*\[?\s*(\d+(?:\.\d+)?)"))


@dataclass(frozen=True)
class Question:
    id: str
    text: str


def load_questions(path: str) -> list[Question]:
    """A JSONL file, one question a line: MT-Bench's form (``turns``: the first turn is asked), or ``question``
    or ``prompt``; ``question_id`` (or ``id``) names it."""
    questions = []
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read the judge's questions {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from None
        text = None
        if isinstance(row, dict):
            turns = row.get("turns")
            text = turns[0] if isinstance(turns, list) and turns else row.get("question", row.get("prompt"))
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}, line {number}: no question (give turns, question or prompt)")
        questions.append(Question(str(row.get("question_id", row.get("id", number))), text))
    if not questions:
        raise ValueError(f"{path} holds no question")
    return questions


def load_prompt(path: str | None) -> str:
    """The judge's prompt template: {question} and {answer} are filled in (nothing else is a placeholder)."""
    source = Path(path).expanduser() if path else DEFAULT_PROMPT
    try:
        template = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the judge's prompt {source}: {exc.strerror or exc}") from None
    missing = [name for name in ("{question}", "{answer}") if name not in template]
    if missing:
        raise ValueError(f"the judge's prompt {source} lacks {' and '.join(missing)}")
    return template


def parse_rating(text: str) -> float | None:
    """The rating in a judgement ("Rating: [[7]]"), when it is one from 1 to 10."""
    for pattern in _RATING:
        found = pattern.findall(text or "")
        if found:
            value = float(found[-1])
            return value if 1.0 <= value <= 10.0 else None
    return None


class Judge:
    """Rates answers through the endpoint; identical (question, answer) pairs are asked once."""

    def __init__(self, model: str, base_url: str, api_key_env: str, prompt: str, max_tokens: int):
        self.model, self.base_url, self.api_key_env = model, base_url, api_key_env
        self.prompt, self.max_tokens = prompt, max_tokens
        self._ratings: dict[tuple[str, str], float | None] = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    def _client(self):
        from llm2.proposers.openai import OpenAIProposer

        if getattr(self._local, "client", None) is None:  # one client per thread: its bookkeeping is not shared
            self._local.client = OpenAIProposer(self.model, base_url=self.base_url, api_key_env=self.api_key_env,
                                                json_mode=False, max_tokens=self.max_tokens, max_retries=3)
        return self._local.client

    def rate_one(self, question: str, answer: str) -> float | None:
        from llm2.proposers.base import Message, ProposalRequest, ProposerError

        key = (question, answer)
        with self._lock:
            if key in self._ratings:
                return self._ratings[key]
        text = self.prompt.replace("{question}", question).replace("{answer}", answer)
        request = ProposalRequest(messages=(Message("user", text),), history=(), temperature=0.0, seed=0)
        try:
            rating = parse_rating(self._client().propose(request).text)
        except ProposerError as exc:
            raise ValueError(f"the judge at {self.base_url} failed: {one_line(exc)}") from None
        with self._lock:
            self._ratings[key] = rating
        return rating

    def rate(self, questions: list[str], answers: list[str]) -> list[float | None]:
        """Ratings in order; None where the judgement held no rating from 1 to 10."""
        with ThreadPoolExecutor(max_workers=min(PARALLEL_REQUESTS, max(1, len(questions)))) as pool:
            return list(pool.map(self.rate_one, questions, answers))
