"""Scoring a merged Hugging Face model on question/answer pairs: exact match of its greedy answers (GSM8k-style
extraction), or, cheaply, the log-likelihood of the reference answers. Runs in the trusted supervisor on a merged
model directory; never imports candidate code.

A directory a candidate's process wrote is read for its safetensors weights alone: ``weights_view`` puts them,
with an index checked to name only those files, into a private directory beside the base model's config and
generation config, and the model is loaded from there. Nothing else the candidate left (a config, a generation
config with token biases, an adapter config naming other weights) can change what is scored."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from llm2.task_api.base import Metrics, TrainOutput
from llm2.tasks.hf_generation import greedy_answers
from llm2.tasks.merging_hf.answers import Question, is_correct, load_questions
from llm2.tasks.merging_hf.streaming import INDEX_FILE
from llm2.temp_dirs import marked_dir

PLAIN_PROMPT = "Question: {question}\nAnswer:"
CONFIG_FILES = ("config.json", "generation_config.json")  # from the base model, never the merged directory


@contextmanager
def weights_view(model_dir: str | Path, config_dir: str | Path) -> Iterator[Path]:
    """A private directory holding only ``model_dir``'s safetensors weights (links to them; its index rewritten
    after checking that it names only those files) and ``config_dir``'s config files; removed afterwards."""
    model_dir = Path(model_dir)
    weights = {p.name for p in model_dir.glob("*.safetensors") if p.is_file() and not p.is_symlink()}
    view = Path(marked_dir("llm2-merged-"))
    try:
        index = model_dir / INDEX_FILE
        if index.exists():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                named = set(weight_map.values()) if isinstance(weight_map, dict) else {None}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"the merged model's {INDEX_FILE} is not a valid index ({exc})") from None
            if not named <= weights:
                strange = sorted(str(name) for name in named - weights)[:3]
                raise ValueError(f"the merged model's {INDEX_FILE} names files it does not hold: {strange}")
            (view / INDEX_FILE).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
        elif "model.safetensors" not in weights:
            raise ValueError("the merged model holds neither model.safetensors nor an index of shards")
        for name in weights:
            (view / name).symlink_to((model_dir / name).resolve())
        for name in CONFIG_FILES:
            if (Path(config_dir) / name).is_file():
                shutil.copyfile(Path(config_dir) / name, view / name)
        yield view
    finally:
        shutil.rmtree(view, ignore_errors=True)


def device_name() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class QuestionScorer:
    """Scores model directories on ``questions``. ``fitness``: "exact-match" (generate, extract, compare; also
    reports the log-likelihood) or "loglik" (the mean per-token log-likelihood of the reference answers only)."""

    def __init__(self, questions: Sequence[Question], fitness: str = "exact-match", prompt: str = "auto",
                 max_new_tokens: int = 256, batch_size: int = 8, device: str | None = None,
                 reference_dir: str | Path | None = None):
        self.questions = list(questions)
        self.fitness = fitness
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.device = device or device_name()
        self.reference_dir = reference_dir
        self._reference: Metrics | None = None

    @classmethod
    def from_settings(cls, settings: Any, reference_dir: str | Path | None = None) -> QuestionScorer:
        return cls(load_questions(settings.eval, settings.limit), settings.fitness, settings.prompt,
                   settings.max_new_tokens, settings.batch_size, reference_dir=reference_dir)

    # -- the Scorer protocol -----------------------------------------------------------------------------------
    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        if output.output_dir is None or self.reference_dir is None:
            raise ValueError("merging-hf scores a merged model directory with the base model's config: "
                             f"{'the output names no directory' if self.reference_dir else 'no base model given'}")
        # the child wrote the weights; the config and tokenizer are the base's own, never the child's copies
        return self.score_dir(output.output_dir, quick, config_dir=self.reference_dir)

    def reference_metrics(self) -> Metrics:
        """The base model, unmerged."""
        if self._reference is None:
            if self.reference_dir is None:
                raise ValueError("no base model directory to score as the reference")
            self._reference = self.score_dir(self.reference_dir)
        return self._reference

    # -- scoring a directory -----------------------------------------------------------------------------------
    def score_dir(self, model_dir: str | Path, quick: bool = False, config_dir: str | Path | None = None) -> Metrics:
        """Metrics of the model in ``model_dir`` (safetensors weights only, never pickles). With ``config_dir``
        (the base model's), only ``model_dir``'s weights are read (``weights_view``): config, generation config
        and tokenizer are ``config_dir``'s."""
        if config_dir is None:
            return self._score(Path(model_dir), Path(model_dir), quick)
        with weights_view(model_dir, config_dir) as view:
            return self._score(view, Path(config_dir), quick)

    def _score(self, model_dir: Path, config_dir: Path, quick: bool) -> Metrics:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        questions = self.questions[:max(1, len(self.questions) // 4)] if quick else self.questions
        tokenizer = AutoTokenizer.from_pretrained(str(config_dir))
        dtype = "auto" if self.device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), config=AutoConfig.from_pretrained(config_dir),
                                                     dtype=dtype, use_safetensors=True).to(self.device).eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._special = not self._uses_chat(tokenizer)  # a chat template writes its own BOS; plain text needs one
        prompts = [self._prompt(tokenizer, q.question) for q in questions]
        values = {"loglik": self._loglik(model, tokenizer, prompts, [q.answer for q in questions])}
        if self.fitness == "exact-match":
            answers = self._generate(model, tokenizer, prompts)
            values["exact_match"] = sum(is_correct(a, q.answer) for a, q in zip(answers, questions)) / len(questions)
        fitness = values["exact_match"] if self.fitness == "exact-match" else values["loglik"]
        return Metrics(fitness, values)

    def _uses_chat(self, tokenizer: Any) -> bool:
        return self.prompt == "auto" and bool(getattr(tokenizer, "chat_template", None))

    def _prompt(self, tokenizer: Any, question: str) -> str:
        if self._uses_chat(tokenizer):
            return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                                 add_generation_prompt=True)
        return (PLAIN_PROMPT if self.prompt in ("auto", "plain") else self.prompt).format(question=question)

    def _generate(self, model: Any, tokenizer: Any, prompts: list[str]) -> list[str]:
        answers = greedy_answers(model, tokenizer, prompts, self.max_new_tokens, self._special, self.batch_size)
        return [text.split("\nQuestion:")[0] for text in answers]  # the model may go on with a next question

    @torch.no_grad()
    def _loglik(self, model: Any, tokenizer: Any, prompts: list[str], answers: list[str]) -> float:
        """The mean over questions of the reference answer's mean per-token log-probability given the prompt."""
        per_question = []
        for prompt, answer in zip(prompts, answers):
            prompt_ids = tokenizer(prompt, add_special_tokens=self._special)["input_ids"]
            continuation = (" " if prompt.endswith(":") else "") + answer
            answer_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
            if not answer_ids:
                continue
            ids = torch.tensor([prompt_ids + answer_ids], device=self.device)
            logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
            target = ids[0, len(prompt_ids):]
            per_question.append(float(torch.log_softmax(logits, -1).gather(1, target[:, None]).mean()))
        return sum(per_question) / len(per_question) if per_question else math.nan
