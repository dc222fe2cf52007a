"""Scoring a merged Hugging Face model on question/answer pairs: exact match of its greedy answers (GSM8k-style
extraction), or, cheaply, the log-likelihood of the reference answers. Runs in the trusted supervisor on a merged
model directory; never imports candidate code (the directory holds safetensors weights and JSON only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from llm2.tasks.base import Metrics, TrainOutput
from llm2.tasks.merging_hf.answers import Question, is_correct, load_questions

PLAIN_PROMPT = "Question: {question}\nAnswer:"


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
        model_dir = getattr(output, "output_dir", None)
        if model_dir is None:
            raise ValueError("merging-hf scores a merged model directory: this llm2 cannot yet hand the child's "
                             "output files to the scorer (see QuestionScorer.score_dir)")
        # the child wrote the weights; the config and tokenizer are the base's own, never the child's copies
        return self.score_dir(model_dir, quick, config_dir=self.reference_dir)

    def reference_metrics(self) -> Metrics:
        """The base model, unmerged."""
        if self._reference is None:
            if self.reference_dir is None:
                raise ValueError("no base model directory to score as the reference")
            self._reference = self.score_dir(self.reference_dir)
        return self._reference

    # -- scoring a directory -----------------------------------------------------------------------------------
    def score_dir(self, model_dir: str | Path, quick: bool = False, config_dir: str | Path | None = None) -> Metrics:
        """Metrics of the model in ``model_dir`` (safetensors weights only, never pickles); its config and
        tokenizer come from ``config_dir`` when given (the base model's), else from ``model_dir``."""
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        questions = self.questions[:max(1, len(self.questions) // 4)] if quick else self.questions
        source = str(config_dir or model_dir)
        tokenizer = AutoTokenizer.from_pretrained(source)
        dtype = "auto" if self.device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), config=AutoConfig.from_pretrained(source),
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

    @torch.no_grad()
    def _generate(self, model: Any, tokenizer: Any, prompts: list[str]) -> list[str]:
        tokenizer.padding_side = "left"  # generation continues every row from its last prompt token
        answers = []
        for start in range(0, len(prompts), self.batch_size):
            batch = tokenizer(prompts[start:start + self.batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=self._special).to(self.device)
            out = model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            new = out[:, batch["input_ids"].shape[1]:]
            answers += [text.split("\nQuestion:")[0] for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
        return answers

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
