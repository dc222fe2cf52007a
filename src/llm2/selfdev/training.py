"""The DPO step: the factory trained on its own (prompt, chosen, rejected) pairs through TRL.

TRL's ``DPOTrainer`` does the work (its own DPO loss, or any llm2 preference objective through
``llm2.integrations.trl.ObjectiveDPOTrainer``: a loss llm2 discovered trains the model that discovers). A large
factory gets a LoRA adapter (PEFT): the factory of the previous iteration, adapters merged, is the frozen model
under a fresh adapter and so also the DPO reference. A tiny one is trained in full against a frozen copy of itself
from before the step.

The result is built under a temporary name and renamed into place once whole, so a step killed midway leaves
nothing behind that looks finished, and is simply run again on resume (same pairs, same seed).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

from llm2.errors import first_line
from llm2.selfdev.factory import Factory, FactoryError, base_location, relative_base, write_manifest
from llm2.files import fresh_dir, partial_dir, replace_dir, write_json
from llm2.selfdev.plan import TrainingRecipe
from llm2.selfdev.prompting import FactoryPrompt
from llm2.selfdev.quiet import quiet_hf, without_printer

TRAINING_LOG = "training.json"


@dataclass(frozen=True)
class TrainingResult:
    recipe: TrainingRecipe  # resolved
    pairs: int
    steps: int
    seconds: float
    first_loss: float | None
    last_loss: float | None
    reward_margin: float | None  # the last logged rewards/margins (chosen minus rejected implicit reward)
    reward_accuracy: float | None  # the last logged rewards/accuracies


def preference_rows(prompt: FactoryPrompt, pairs: list[tuple[str, str]]) -> list[dict]:
    """TRL's preference format: plain text for a plain factory, conversations for a chat one."""
    if prompt.text is not None:
        return [{"prompt": prompt.text, "chosen": chosen, "rejected": rejected} for chosen, rejected in pairs]
    messages = [{"role": m.role, "content": m.content} for m in prompt.messages]
    return [{"prompt": messages, "chosen": [{"role": "assistant", "content": chosen}],
             "rejected": [{"role": "assistant", "content": rejected}]} for chosen, rejected in pairs]


def train_factory(source: Path, prompt: FactoryPrompt, pairs: list[tuple[str, str]], recipe: TrainingRecipe,
                  seed: int, target: Path, adapter_target: Path, scratch: Path) -> TrainingResult:
    """Train the factory in ``source`` on ``pairs``; write the new factory to ``target`` (and, for LoRA, its
    adapter to ``adapter_target``). FactoryError with one line when training cannot run."""
    import contextlib

    from llm2.task_api.threads import single_thread

    quiet_hf()
    started = time.perf_counter()
    factory = Factory.load(source)
    recipe = recipe.resolved(factory.parameters)
    context = single_thread() if factory.device == "cpu" else contextlib.nullcontext()
    with context:
        trainer = _trainer(factory, prompt, pairs, recipe, seed, fresh_dir(scratch))
        try:
            trainer.train()
        except (RuntimeError, ValueError) as exc:
            raise FactoryError(f"training the factory failed: {first_line(exc)}") from None
    log = [entry for entry in trainer.state.log_history if "loss" in entry]
    first, last = (log[0], log[-1]) if log else ({}, {})
    result = TrainingResult(recipe, len(pairs), int(trainer.state.global_step),
                            round(time.perf_counter() - started, 2), first.get("loss"), last.get("loss"),
                            last.get("rewards/margins"), last.get("rewards/accuracies"))
    origin = {"trained_from": str(source), "pairs": len(pairs), "recipe": dataclasses.asdict(recipe), "seed": seed}
    model = trainer.accelerator.unwrap_model(trainer.model)
    built = fresh_dir(partial_dir(target))
    if recipe.tuning == "lora":
        adapter_built = fresh_dir(partial_dir(adapter_target))
        model.save_pretrained(adapter_built)
        replace_dir(adapter_built, adapter_target)
        source_manifest = factory.manifest
        base = relative_base(base_location(source, source_manifest.base) if source_manifest.base
                             else str(source.resolve()), target)
        chain = [a if Path(a).is_absolute() else os.path.relpath((source / a).resolve(), target)
                 for a in source_manifest.adapters]
        chain.append(os.path.relpath(adapter_target.resolve(), target))
        factory.tokenizer.save_pretrained(built)
        write_manifest(built, dataclasses.replace(source_manifest, base=base, adapters=tuple(chain), origin=origin))
    else:
        Factory(model, factory.tokenizer, factory.manifest, factory.label, factory.device).save_full(
            built, dataclasses.replace(factory.manifest, origin=origin))
    write_json(built / TRAINING_LOG, {"result": dataclasses.asdict(result), "log": trainer.state.log_history})
    replace_dir(built, target)
    del trainer, model
    factory.release()  # frees the accelerator's cache too
    return result


def _trainer(factory: Factory, prompt: FactoryPrompt, pairs: list[tuple[str, str]], recipe: TrainingRecipe,
             seed: int, scratch: Path):
    from datasets import Dataset

    from trl import DPOConfig, DPOTrainer

    on_cpu = factory.device == "cpu"
    args = DPOConfig(
        output_dir=str(scratch), beta=recipe.beta, learning_rate=recipe.learning_rate,
        num_train_epochs=recipe.epochs, per_device_train_batch_size=recipe.batch_size, seed=seed, data_seed=seed,
        logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=on_cpu, bf16=not on_cpu,
        gradient_checkpointing=not on_cpu, dataloader_num_workers=0,
        max_length=None,  # never truncate: the discovery's prompt is long, and a cut completion teaches nothing
        **({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, recipe.sft_weight]} if recipe.sft_weight else {}))
    kwargs = dict(model=factory.model, args=args, train_dataset=Dataset.from_list(preference_rows(prompt, pairs)),
                  processing_class=factory.tokenizer)
    if recipe.tuning == "full":  # the reference: a frozen copy of the factory before the step
        kwargs["ref_model"] = copy.deepcopy(factory.model).eval()
    else:
        from peft import LoraConfig

        kwargs["peft_config"] = LoraConfig(r=recipe.lora_rank, lora_alpha=recipe.lora_alpha, lora_dropout=0.0,
                                           target_modules="all-linear", task_type="CAUSAL_LM")
    factory.model.train()
    if recipe.objective is None:
        trainer = DPOTrainer(**kwargs)
    else:
        from llm2.tasks.preference.trl import ObjectiveDPOTrainer

        trainer = ObjectiveDPOTrainer(objective=recipe.objective, **kwargs)
    without_printer(trainer)
    return trainer
