"""The preference-hf task's settings (``--task-option key=value``): which model and data, how to train, what the
fitness is. Everything a run needs to be repeated is here (paths, seeds, steps); the training seed is the
evaluation's own."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

FITNESSES = ("pref-accuracy", "reward-model", "judge")
DEVICES = ("auto", "cpu", "cuda")
STARTS = ("auto", "fork", "spawn")
TRANSFERS = ("auto", "pipe", "file")
SCHEDULES = ("cosine", "linear", "constant")
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET")
PATH_FIELDS = ("model", "dataset", "reward_model", "judge_questions", "judge_prompt")


@dataclass(frozen=True)
class PreferenceHFSettings:
    # -- the model and the data ---------------------------------------------------------------------------------
    model: str = field(default="", metadata={
        "help": "the causal LM to train: a local directory (save_pretrained) or a hub id (needs hub access)"})
    dataset: str = field(default="", metadata={
        "help": "preference pairs with prompt/chosen/rejected (text or chat messages): a local .json, .jsonl or "
                ".parquet file, or a hub dataset id"})
    split: str = field(default="train", metadata={"help": "the dataset split to train on (hub datasets)"})
    eval_split: str | None = field(default=None, metadata={
        "help": "the split the held-out pairs come from; none: eval_size pairs held out of the training split"})
    train_size: int | None = field(default=None, metadata={
        "help": "pairs to train on (a seeded subset); none: all that are not held out"})
    eval_size: int = field(default=200, metadata={
        "help": "held-out pairs: preference accuracy is measured on them, their prompts are generated from"})
    data_seed: int = field(default=0, metadata={"help": "which pairs are held out and which form train_size"})
    max_length: int | None = field(default=1024, metadata={
        "help": "longest prompt+completion in tokens (longer ones are truncated, TRL's keep_start)"})
    # -- training (TRL's DPOTrainer with the candidate's objective) ---------------------------------------------
    beta: float = field(default=0.05, metadata={"help": "β passed to the objective"})
    lr: float = field(default=5e-7, metadata={"help": "learning rate"})
    epochs: float = field(default=2.0, metadata={"help": "passes over the training pairs"})
    max_steps: int | None = field(default=None, metadata={"help": "optimizer steps; when set, replaces epochs"})
    batch_size: int = field(default=8, metadata={"help": "pairs per device batch"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps per optimizer step"})
    schedule: str = field(default="cosine", metadata={"help": f"learning-rate schedule: {' | '.join(SCHEDULES)}"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of the steps spent warming the rate up"})
    lora: int = field(default=0, metadata={
        "help": "LoRA rank (0: full fine-tuning); the adapter alone is trained and handed back"})
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA alpha; none: twice the rank"})
    device: str = field(default="auto", metadata={
        "help": "auto (a GPU when there is one, in bf16; else the CPU in float32) | cpu | cuda"})
    start: str = field(default="auto", metadata={
        "help": "how a candidate's process is made: auto (spawn on a GPU, fork on the CPU) | fork | spawn"})
    weights: str = field(default="auto", metadata={
        "help": "how trained weights come back: auto (a file for GPUs and models over 200 MB) | pipe | file"})
    # -- the fitness ------------------------------------------------------------------------------------------
    fitness: str = field(default="pref-accuracy", metadata={"help": f"what is maximised: {' | '.join(FITNESSES)}"})
    reward_model: str | None = field(default=None, metadata={
        "help": "fitness reward-model: a sequence-classification reward model (local directory or hub id)"})
    judge_model: str | None = field(default=None, metadata={"help": "fitness judge: the judge's model name"})
    judge_base_url: str = field(default="https://api.openai.com/v1", metadata={
        "help": "fitness judge: the OpenAI-compatible endpoint"})
    judge_api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "fitness judge: the environment variable holding the judge's key (never recorded)"})
    judge_questions: str | None = field(default=None, metadata={
        "help": "fitness judge: a JSONL file of questions (MT-Bench's question.jsonl form: turns; or question)"})
    judge_prompt: str | None = field(default=None, metadata={
        "help": "fitness judge: a text file with {question} and {answer}; none: llm2's single-answer 1-10 prompt"})
    judge_max_tokens: int = field(default=1024, metadata={"help": "fitness judge: longest judgement"})
    max_new_tokens: int = field(default=256, metadata={"help": "longest answer the policy generates when scored"})
    generations: int = field(default=64, metadata={
        "help": "fitness reward-model: held-out prompts the policy answers (at most eval_size)"})

    def __post_init__(self) -> None:
        # local paths recorded absolute, so that a resumed run or a held-out check finds them from anywhere
        for name in PATH_FIELDS:
            value = getattr(self, name)
            if value and Path(value).expanduser().exists():
                object.__setattr__(self, name, str(Path(value).expanduser().resolve()))
        problems = []

        def require(condition: bool, message: str) -> None:
            if not condition:
                problems.append(message)

        for name in ("eval_size", "batch_size", "grad_accum", "judge_max_tokens", "max_new_tokens", "generations"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, not {getattr(self, name)}")
        for name, least in (("train_size", 1), ("max_steps", 1), ("max_length", 8)):
            value = getattr(self, name)
            require(value is None or value >= least, f"{name} must be at least {least} (or none), not {value}")
        require(self.data_seed >= 0, f"data_seed must be 0 or more, not {self.data_seed}")
        require(math.isfinite(self.beta) and self.beta > 0, f"beta must be positive, not {self.beta}")
        require(math.isfinite(self.lr) and 0 < self.lr <= 1, f"lr must be in (0, 1], not {self.lr}")
        require(math.isfinite(self.epochs) and self.epochs > 0, f"epochs must be positive, not {self.epochs}")
        require(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), not {self.warmup_ratio}")
        require(self.lora >= 0, f"lora must be 0 (full fine-tuning) or a rank, not {self.lora}")
        require(self.lora_alpha is None or self.lora_alpha > 0, f"lora_alpha must be positive, not {self.lora_alpha}")
        for name, allowed in (("schedule", SCHEDULES), ("device", DEVICES), ("start", STARTS),
                              ("weights", TRANSFERS), ("fitness", FITNESSES)):
            require(getattr(self, name) in allowed,
                    f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        if self.fitness == "reward-model":
            require(bool(self.reward_model), "fitness reward-model needs reward_model=PATH_OR_ID")
        # the workers' environment is stripped of names like these: a key named otherwise would reach them
        require(any(marker in self.judge_api_key_env.upper() for marker in SECRET_MARKERS),
                f"judge_api_key_env must name a variable with {', '.join(SECRET_MARKERS)} in its name (llm2 keeps "
                f"those from the processes that run candidates), not {self.judge_api_key_env!r}")
        if self.fitness == "judge":
            require(bool(self.judge_model), "fitness judge needs judge_model=NAME")
            require(bool(self.judge_questions), "fitness judge needs judge_questions=FILE.jsonl")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def lora_scale(self) -> float:
        return self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora
