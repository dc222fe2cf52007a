"""Scoring trained weights (trusted: the process that drives the workers; never candidate code).

Every fitness also reports the cheap numbers: the implicit-reward preference accuracy on the held-out pairs
(β·log π/π_ref of the chosen completion above the rejected one's; ties count half) and the mean reward margin.
``reward-model``: the mean score a sequence-classification reward model gives the policy's greedy answers to
held-out prompts. ``judge``: the mean 1-10 rating an LLM judge gives its answers to the judge's questions. The
untrained start's score is reported beside every result (``reference_score``).
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import torch

from llm2.task_api.base import CandidateError, Metrics, TrainOutput
from llm2.tasks.hf_generation import greedy_answers
from llm2.tasks.preference_hf.data import TokenizedPairs, load_scoring_file, pair_logps, pairs_from
from llm2.tasks.preference_hf.models import (
    device_for,
    dtype_name,
    load_causal_lm,
    load_reward_model,
    load_tokenizer,
    lora_config,
)
from llm2.tasks.preference_hf.settings import PreferenceHFSettings

QUICK_SHARE = 0.25  # the cascade's probe scores this share of the held-out pairs, prompts or questions
EVAL_BATCH_PAIRS = 8
GENERATION_BATCH = 8
MAX_UNRATED_SHARE = 0.5  # more unrated judgements than this and the score fails


def quick_count(total: int, quick: bool) -> int:
    return max(1, min(total, math.ceil(QUICK_SHARE * total))) if quick else total


def templated(prompt: Any, tokenizer: Any, as_chat: bool = False) -> bool:
    """Whether a prompt goes through the chat template: chat messages do, and plain text does when ``as_chat``
    (a judge's question) and the tokenizer has a template."""
    return bool(tokenizer.chat_template) and (not isinstance(prompt, str) or as_chat)


def prompt_text(prompt: Any, tokenizer: Any, as_chat: bool = False) -> str:
    """A prompt as the policy sees it: through the chat template with the generation prompt (see ``templated``),
    else as plain text (a conversation without a template: its messages' contents, one a line)."""
    if templated(prompt, tokenizer, as_chat):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content", "")) for m in prompt)


class PreferenceHFScorer:
    """Holds the held-out data, one copy of the policy (weights loaded per score) and, for its fitness, the reward
    model or the judge. One score at a time (the executor's handles score from several threads)."""

    def __init__(self, settings: PreferenceHFSettings):
        self.settings = settings
        record = load_scoring_file(settings)
        self.pairs: TokenizedPairs = pairs_from(record)
        self.prompts = json.loads(record.get("prompts_json", "[]"))
        self.model_path = record["model_path"]
        self.device = device_for(settings)
        self.tokenizer = load_tokenizer(self.model_path)
        self.model = load_causal_lm(self.model_path, dtype_name(self.device)).to(self.device).eval()
        if settings.lora:
            from peft import get_peft_model

            self.model = get_peft_model(self.model, lora_config(settings)).eval()
        self._expected = self._expected_weights()
        self._holds_base = True
        # the reference's log-probs computed here, batched exactly as the policy's are: the untrained start then
        # has margins of exactly 0 (an accuracy of exactly 0.5), whatever the precision
        self.reference_chosen, self.reference_rejected = self._logps(len(self.pairs))
        self._lock = threading.Lock()
        self._reference: dict[bool, Metrics] = {}
        self._reward_model = None
        self._judge = None
        self._questions = None
        if settings.fitness == "judge":  # fail at once on a bad file, not after the first training
            self._judge_setup()

    # -- the Scorer protocol ----------------------------------------------------------------------------------
    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        with self._lock:
            self._load(output.weights)
            values = self._measure(quick)
            reference = self._reference_locked(quick)
        values["reference_score"] = reference.fitness
        if output.loss_trace:
            values["loss_final"] = output.loss_trace[-1]
        return Metrics(values.pop("fitness"), values)

    def reference_metrics(self) -> Metrics:
        with self._lock:
            return self._reference_locked(False)

    # -- the weights --------------------------------------------------------------------------------------------
    def _expected_weights(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        if self.settings.lora:
            from peft import get_peft_model_state_dict

            state = get_peft_model_state_dict(self.model)
        else:
            state = self.model.state_dict()
        return {name: (tuple(t.shape), t.dtype) for name, t in state.items()}

    def _check(self, weights: dict[str, torch.Tensor]) -> None:
        missing, unexpected = sorted(set(self._expected) - set(weights)), sorted(set(weights) - set(self._expected))
        if missing or unexpected:
            raise CandidateError(f"the weights do not match the model (missing {missing[:3]}, unexpected "
                                 f"{unexpected[:3]})", stage="score")
        for name, tensor in weights.items():
            shape, _ = self._expected[name]
            if tuple(tensor.shape) != shape:
                raise CandidateError(f"weight {name} has shape {tuple(tensor.shape)}, the model needs {shape}",
                                     stage="score")
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise CandidateError(f"weight {name} holds non-finite values", stage="score")

    def _load(self, weights: dict[str, torch.Tensor] | None) -> None:
        """Put ``weights`` into the policy (None: the untrained base)."""
        if self.settings.lora:
            from peft import set_peft_model_state_dict

            if weights is not None:
                self._check(weights)
                set_peft_model_state_dict(self.model, {k: v.to(self._expected[k][1]) for k, v in weights.items()})
            return
        if weights is None:
            if not self._holds_base:
                base = load_causal_lm(self.model_path, dtype_name(self.device)).state_dict()
                self.model.load_state_dict(base)
                self._holds_base = True
            return
        self._check(weights)
        self.model.load_state_dict({k: v.to(self._expected[k][1]) for k, v in weights.items()})
        self._holds_base = False

    # -- measuring ------------------------------------------------------------------------------------------------
    def _reference_locked(self, quick: bool) -> Metrics:
        if quick not in self._reference:
            if self.settings.lora:
                with self.model.disable_adapter():
                    values = self._measure(quick)
            else:
                self._load(None)
                values = self._measure(quick)
            fitness = values.pop("fitness")
            self._reference[quick] = Metrics(fitness, {**values, "reference_score": fitness})
        return self._reference[quick]

    def _measure(self, quick: bool) -> dict[str, float]:
        values = self._preference(quick)
        fitness = self.settings.fitness
        if fitness == "reward-model":
            values["reward"] = self._reward(quick)
            values["fitness"] = values["reward"]
        elif fitness == "judge":
            values.update(self._judged(quick))
            values["fitness"] = values["judge_score"]
        else:
            values["fitness"] = values["pref_accuracy"]
        return values

    def _logps(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's summed completion log-probs of the first ``count`` held-out pairs (chosen, rejected)."""
        return pair_logps(self.model, self.pairs, count, EVAL_BATCH_PAIRS, self.tokenizer.pad_token_id,
                          self.settings.max_length)

    def _preference(self, quick: bool) -> dict[str, float]:
        count = quick_count(len(self.pairs), quick)
        beta = self.settings.beta
        policy_chosen, policy_rejected = self._logps(count)
        chosen = beta * (policy_chosen - self.reference_chosen[:count])
        rejected = beta * (policy_rejected - self.reference_rejected[:count])
        margin = chosen - rejected
        tie = margin == 0  # the untrained start: every margin exactly 0; a tie counts half
        accuracy = ((margin > 0).double().mean() + 0.5 * tie.double().mean()).item()
        return {"pref_accuracy": accuracy, "margin": margin.mean().item(), "chosen_reward": chosen.mean().item(),
                "rejected_reward": rejected.mean().item()}

    @torch.no_grad()
    def _reward(self, quick: bool) -> float:
        if self._reward_model is None:
            self._reward_model = load_reward_model(self.settings.reward_model, self.device)
        if not self.prompts:
            raise ValueError("the held-out pairs have no prompt field to generate answers from")
        prompts = self.prompts[:quick_count(min(self.settings.generations, len(self.prompts)), quick)]
        texts = [prompt_text(p, self.tokenizer) for p in prompts]
        answers = greedy_answers(self.model, self.tokenizer, texts, self.settings.max_new_tokens,
                                 special_tokens=not templated(prompts[0], self.tokenizer),
                                 batch_size=GENERATION_BATCH)
        model, tokenizer = self._reward_model
        scores = []
        for prompt, answer in zip(prompts, answers):
            if tokenizer.chat_template:
                messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
                text = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}],
                                                     tokenize=False)
            else:
                text = prompt_text(prompt, tokenizer) + answer
            encoded = tokenizer(text, return_tensors="pt", truncation=True,
                                max_length=self.settings.max_length).to(model.device)
            scores.append(model(**encoded).logits[0, 0].float().item())
        return float(sum(scores) / len(scores))

    def _judge_setup(self) -> None:
        from llm2.tasks.preference_hf.judge import Judge, load_prompt, load_questions

        settings = self.settings
        self._questions = load_questions(settings.judge_questions)
        self._judge = Judge(settings.judge_model, settings.judge_base_url, settings.judge_api_key_env,
                            load_prompt(settings.judge_prompt), settings.judge_max_tokens)

    def _judged(self, quick: bool) -> dict[str, float]:
        questions = self._questions[:quick_count(len(self._questions), quick)]
        texts = [prompt_text(q.text, self.tokenizer, as_chat=True) for q in questions]
        answers = greedy_answers(self.model, self.tokenizer, texts, self.settings.max_new_tokens,
                                 special_tokens=not templated(questions[0].text, self.tokenizer, as_chat=True),
                                 batch_size=GENERATION_BATCH)
        ratings = self._judge.rate([q.text for q in questions], answers)
        rated = [r for r in ratings if r is not None]
        if len(rated) < (1 - MAX_UNRATED_SHARE) * len(ratings):
            raise ValueError(f"the judge gave no rating [[1-10]] for {len(ratings) - len(rated)} of "
                             f"{len(ratings)} answers")
        return {"judge_score": sum(rated) / len(rated), "judge_unrated": float(len(ratings) - len(rated))}
