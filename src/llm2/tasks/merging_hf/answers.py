"""Question/answer pairs from a JSONL file, and GSM8k-style answer extraction: the number after the last '####',
else the last number in the text; numbers compare as numbers ("1,000" = "1000" = "1000.0")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from llm2.files import JsonLineError, json_lines

NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class Question:
    question: str
    answer: str  # the reference answer text (GSM8k: reasoning, then "#### 42")


class QuestionFileError(ValueError):
    """The evaluation file cannot be used; the message says which line and why."""


def load_questions(path: str | Path, limit: int | None = None) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise QuestionFileError(f"evaluation file not found: {path}")
    found = []
    try:
        for number, record in json_lines(path):
            if not isinstance(record, dict) or "question" not in record or "answer" not in record:
                raise QuestionFileError(f"{path}, line {number}: needs an object with 'question' and 'answer'")
            found.append(Question(str(record["question"]), str(record["answer"])))
            if limit is not None and len(found) == limit:
                break
    except JsonLineError as exc:
        raise QuestionFileError(f"{path}, line {exc.number}: not JSON ({exc.error.args[0]})") from None
    if not found:
        raise QuestionFileError(f"{path}: no questions")
    return found


def extract_answer(text: str) -> str | None:
    """The final answer in ``text``: the first number after the last '####', else the last number; None if none."""
    if "####" in text:
        found = NUMBER.findall(text.rsplit("####", 1)[1])
        if found:
            return _normalise(found[0])
    found = NUMBER.findall(text)
    return _normalise(found[-1]) if found else None


def _normalise(number: str) -> str:
    cleaned = number.replace(",", "").replace("$", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return cleaned
    normal = value.normalize()
    return format(normal, "f") if normal == normal.to_integral() else str(normal)


def is_correct(generated: str, reference: str) -> bool:
    expected = extract_answer(reference)
    return expected is not None and extract_answer(generated) == expected
