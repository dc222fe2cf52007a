"""Training with a candidate objective inside TRL's DPOTrainer (llm2.integrations.trl.ObjectiveDPOTrainer).

Runs in the candidate's confined process: a copy of the base model (the worker's own copy is never touched) is
trained on the tokenized training pairs, with the reference log-probs computed once by ``prepare``, so no
reference model is held in memory. Everything TRL writes goes into the given working directory (the scratch
directory); nothing is saved, logged to disk or reported anywhere. A loss that breaks the contract raises
CandidateError; one that becomes non-finite stops training with the reason.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from llm2.task_api.base import CandidateError, EvalSetting, TensorSpec, TrainOutput
from llm2.task_api.checks import per_example_losses
from llm2.tasks.defaults import spec_of
from llm2.tasks.preference_hf.data import TokenizedPairs, load_training_file, pairs_from
from llm2.tasks.preference_hf.models import device_for, dtype_name, load_causal_lm, load_tokenizer, lora_config
from llm2.tasks.preference_hf.settings import PreferenceHFSettings
from llm2.task_api.threads import single_thread


@dataclass(frozen=True)
class TrainingData:
    """What a worker loads once: the base model (on the CPU, in the training precision), its tokenizer, the
    training pairs and the tensors a candidate must hand back."""

    model_path: str
    dtype: str
    tokenizer: Any
    model: Any
    pairs: TokenizedPairs
    spec: dict[str, TensorSpec]

    @functools.cached_property
    def dataset(self) -> Any:
        """The pairs as TRL's dataset, built once (the trainer only derives new datasets from it). A copy made
        by ``dataclasses.replace`` builds its own from its own pairs."""
        from datasets import Dataset

        return Dataset.from_list(self.pairs.rows())


def load_training(settings: PreferenceHFSettings) -> TrainingData:
    record = load_training_file(settings)
    dtype = dtype_name(device_for(settings))
    model = load_causal_lm(record["model_path"], dtype).eval()
    tokenizer = load_tokenizer(record["model_path"])
    data = TrainingData(record["model_path"], dtype, tokenizer, model, pairs_from(record),
                        output_spec_of(model, settings))
    data.dataset  # built here, in the worker, so that its forked candidates share it
    return data


def output_spec_of(model: Any, settings: PreferenceHFSettings) -> dict[str, TensorSpec]:
    """Full fine-tuning: the model's state dict. LoRA: the adapter's, found on a weightless copy (meta device)."""
    if not settings.lora:
        return spec_of(model.state_dict())
    from peft import get_peft_model, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(model.config, dtype=model.dtype)
    return spec_of(get_peft_model_state_dict(get_peft_model(skeleton, lora_config(settings))))


def planned_steps(pairs: int, settings: PreferenceHFSettings) -> int:
    """Optimizer steps of the full budget: max_steps, else epochs over the pairs."""
    if settings.max_steps is not None:
        return settings.max_steps
    per_epoch = math.ceil(pairs / (settings.batch_size * settings.grad_accum))
    return max(1, math.ceil(settings.epochs * per_epoch))


def snapshot(model: Any, lora: bool) -> dict[str, torch.Tensor]:
    """The weights to hand back, on the CPU: the whole state dict, or the adapter's (PEFT's saved names)."""
    if lora:
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(model)
    else:
        state = model.state_dict()
    # copy=True: one host copy of a CUDA tensor, and still a copy of a CPU one (never the live weights)
    return {name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in state.items()}


def _trainer_class():
    from llm2.tasks.preference.trl import ObjectiveDPOTrainer

    class PreparedDPOTrainer(ObjectiveDPOTrainer):
        """The dataset arrives tokenized, with the reference's log-probs (``data.py`` ran TRL's preparation once,
        in the trusted process): nothing to tokenize, nothing to precompute, no cache file to write."""

        def __init__(self, *args: Any, **kwargs: Any):
            from trl.trainer import dpo_trainer

            # TRL hashes every weight to name its cache of reference log-probs; ours come precomputed.
            original = dpo_trainer.hash_module
            dpo_trainer.hash_module = lambda module: "llm2-precomputed"
            try:
                super().__init__(*args, **kwargs)
            finally:
                dpo_trainer.hash_module = original

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

        def _precompute_ref_logps(self, dataset, name, batch_size):
            return dataset

    return PreparedDPOTrainer


class _Monitor:
    """A TRL callback: the loss trace, the budget, the probe checkpoint, and the stop on a non-finite loss."""

    def __init__(self, steps: int, planned: int, probe_step: int, lora: bool,
                 checkpoint: Callable[[TrainOutput], bool] | None):
        self.steps, self.planned, self.probe_step, self.lora = steps, planned, probe_step, lora
        self.checkpoint = checkpoint
        self.trace: list[float] = []
        self.stop_reason: str | None = None
        self.step = 0  # the step being computed, for the messages of the per-step checks

    def callback(self) -> Any:
        from transformers import TrainerCallback

        monitor = self

        class Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, model=None, **kwargs):
                if logs and "loss" in logs:
                    monitor.logged(float(logs["loss"]), state.global_step, control, model)

            def on_step_end(self, args, state, control, **kwargs):
                monitor.step = state.global_step

        return Callback()

    def logged(self, loss: float, step: int, control: Any, model: Any) -> None:
        self.trace.append(loss)
        if not math.isfinite(loss):
            if step <= 1:  # broken at the starting point: the contract, not a divergence
                raise CandidateError(f"the loss is not finite ({loss}) at the first training step", stage="train")
            self.stop_reason = f"the loss became non-finite ({loss}) at step {step}"
            control.should_training_stop = True
            return
        if self.checkpoint is not None and step == self.probe_step:
            if not self.checkpoint(TrainOutput(snapshot(model, self.lora), list(self.trace), step)):
                self.stop_reason = f"stopped by the probe checkpoint after {step} of {self.planned} steps"
                control.should_training_stop = True
                return
        if step >= self.steps:
            control.should_training_stop = True


def checked_objective(fn: Callable[..., Any], monitor: _Monitor) -> Callable[..., Any]:
    """The candidate with the task's per-step contract checks (shape, float, gradient) around every call."""

    def objective(*args: Any) -> torch.Tensor:
        return per_example_losses(fn, args, len(args[0]), f"at training step {monitor.step}", "train",
                                  require_finite=False)

    objective.__name__ = getattr(fn, "__name__", "candidate")
    return objective


def train_policy(fn: Callable[..., Any], data: TrainingData, setting: EvalSetting, probe_fraction: float,
                 checkpoint: Callable[[TrainOutput], bool] | None = None, device: str | None = None,
                 workdir: Path | None = None) -> TrainOutput:
    """Train a copy of the base model with ``fn`` for ``setting.budget`` of the planned steps (the learning-rate
    schedule is the full budget's: a shorter run is its prefix). ``workdir``: where TRL may write (default: the
    current directory, the candidate's scratch directory)."""
    from transformers import PrinterCallback

    from trl import DPOConfig

    settings: PreferenceHFSettings = setting.task
    device = device or device_for(settings)
    planned = planned_steps(len(data.pairs), settings)
    steps = max(1, min(planned, round(setting.budget * planned)))
    monitor = _Monitor(steps, planned, max(1, math.ceil(probe_fraction * steps)), bool(settings.lora), checkpoint)
    cuda = device == "cuda"
    args = DPOConfig(
        # relative by default: a confined child may not traverse the absolute path of its own working directory
        output_dir=str(workdir / "trl") if workdir is not None else "trl", report_to="none", save_strategy="no",
        logging_strategy="steps", logging_steps=1, disable_tqdm=True, seed=setting.seed, data_seed=setting.seed,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.lr, lr_scheduler_type=settings.schedule, warmup_steps=settings.warmup_ratio,
        max_steps=planned, beta=settings.beta, max_length=settings.max_length, precompute_ref_log_probs=True,
        use_cpu=not cuda, bf16=cuda, activation_checkpointing=cuda, dataloader_pin_memory=cuda,
        dataloader_num_workers=0)
    threads = contextlib.nullcontext() if cuda else single_thread()
    with threads, torch.random.fork_rng(devices=[]):
        model = copy.deepcopy(data.model)  # the worker's copy stays the untouched base model
        try:
            trainer = _trainer_class()(
                objective=checked_objective(fn, monitor), model=model, args=args,
                train_dataset=data.dataset, processing_class=data.tokenizer,
                peft_config=lora_config(settings) if settings.lora else None, callbacks=[monitor.callback()])
        except (TypeError, ValueError) as exc:
            if str(exc).startswith("objective "):  # ObjectiveDPOTrainer's own check of the objective
                raise CandidateError(str(exc), stage="contract") from None
            raise
        trainer.remove_callback(PrinterCallback)  # no per-step lines on stdout
        trainer.train()
        trained = trainer.model
        weights = snapshot(trained, bool(settings.lora))
    stop_reason = monitor.stop_reason
    if stop_reason is None and not all(bool(torch.isfinite(t).all()) for t in weights.values()
                                       if t.is_floating_point()):
        stop_reason = "the weights became non-finite"
    return TrainOutput(weights, monitor.trace, len(monitor.trace), stop_reason)


def warm_up(fn: Callable[..., Any], data: TrainingData, settings: PreferenceHFSettings, workdir: Path) -> None:
    """One step on one pair, on the CPU (CUDA must not start before a spawned child confines itself), so that
    what training imports lazily is imported."""
    one_pair = dataclasses.replace(data, pairs=data.pairs.subset([0]))
    brief = dataclasses.replace(settings, batch_size=1, grad_accum=1, max_steps=1)
    train_policy(fn, one_pair, EvalSetting(brief, 0, 1.0), probe_fraction=1.0, device="cpu", workdir=workdir)
