"""llm2's inner loop against TRL's DPOTrainer: the same tiny model, pairs and batch size; seconds per step.

    HF_HUB_OFFLINE=1 python bench/inner_loop.py [--steps 50] [--warmup 5]

Both sides train a 2-layer, 64-wide, 4-head causal transformer (TRL: a GPT2LMHeadModel built from a config) with
DPO (TRL loss_type "sigmoid", reference log-probs precomputed on both sides) at batch 16 and the default β, Adam
at the task's learning rate (llm2: fused Adam; TRL: its default AdamW, without weight decay), the task's policy
dropout (0.3), on the default world's preference pairs (built into the cache once if missing), on one CPU
thread. Seconds per step are taken between the ends of step ``warmup`` and step ``warmup + steps``, so set-up and
the first steps' allocations are left out on both sides; the two sides take turns ``--repeats`` times and each
keeps its fastest run, so a busy moment on a shared machine does not decide the ratio. TRL's sequences carry one
more token (the EOS it appends to each completion) and two more vocabulary entries (EOS and padding) than llm2's.
The last line is ``ratio_trl_over_llm2=R``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # TRL's reference log-prob pass has its own progress bar

import torch  # noqa: E402

from llm2.tasks import load_task  # noqa: E402
from llm2.task_api.base import EvalSetting  # noqa: E402
from llm2.tasks.preference.catalog import OBJECTIVES  # noqa: E402
from llm2.tasks.preference_synthetic.train import total_steps  # noqa: E402

BATCH_SIZE = 16


def llm2_seconds_per_step(task, settings, warmup: int, steps: int) -> float:
    stamps: list[float] = []
    dpo = OBJECTIVES["dpo"].fn

    def timed_dpo(*args):  # called once per step, at the same point of every step
        stamps.append(time.perf_counter())
        return dpo(*args)

    data = task.training_data(settings)
    full = total_steps(len(data.pairs), 1.0, task.train_config)
    task.train(timed_dpo, data, EvalSetting(settings, 0, (warmup + steps + 1) / full))
    return (stamps[warmup + steps] - stamps[warmup]) / steps


def trl_seconds_per_step(task, settings, warmup: int, steps: int) -> float:
    import datasets
    import transformers
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    data = task.training_data(settings)
    config, pairs = data.config, data.pairs
    dropout = task.train_config.dropout  # the policy's while it trains on the pairs
    words = [f"t{i}" for i in range(config.vocab_size)] + ["<eos>", "<pad>"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", pad_token="<pad>")

    def text(tokens: torch.Tensor) -> str:
        return "".join(f" t{t}" for t in tokens.tolist())

    prompt = config.prompt_length
    dataset = Dataset.from_dict({
        "prompt": [text(row[:prompt]).lstrip() for row in pairs.chosen],
        "chosen": [text(row[prompt:]) for row in pairs.chosen],
        "rejected": [text(row[prompt:]) for row in pairs.rejected],
    })
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(words), n_positions=config.sequence_length + 1, n_embd=config.d_model,
        n_layer=config.layers, n_head=config.heads, n_inner=4 * config.d_model, resid_pdrop=dropout,
        embd_pdrop=dropout, attn_pdrop=dropout, eos_token_id=len(words) - 2,
        bos_token_id=len(words) - 2, pad_token_id=len(words) - 1))

    stamps: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as output_dir:
        args = DPOConfig(
            output_dir=output_dir, per_device_train_batch_size=BATCH_SIZE, max_steps=warmup + steps + 1,
            learning_rate=task.train_config.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
            optim="adamw_torch", beta=settings.beta, loss_type=["sigmoid"],
            precompute_ref_log_probs=True, report_to=[], use_cpu=True, save_strategy="no", logging_steps=10_000,
            disable_tqdm=True, dataloader_num_workers=0, seed=0, max_length=None,
        )
        trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             callbacks=[StepClock()])
        trainer.train()
    return (stamps[warmup + steps - 1] - stamps[warmup - 1]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)  # both sides on one thread, as llm2's workers run

    task = load_task("preference-synthetic")
    settings = task.parse_settings({"fitness": "judge"})  # measured on the judge: no dpo frontier traced
    task.prepare(settings)
    llm2_runs, trl_runs = [], []
    for _ in range(args.repeats):
        llm2_runs.append(llm2_seconds_per_step(task, settings, args.warmup, args.steps))
        trl_runs.append(trl_seconds_per_step(task, settings, args.warmup, args.steps))
        print(f"llm2 {llm2_runs[-1] * 1e3:.1f} ms/step, TRL {trl_runs[-1] * 1e3:.1f} ms/step", flush=True)
    llm2, trl = min(llm2_runs), min(trl_runs)
    print(f"llm2 inner loop: {llm2 * 1e3:.1f} ms/step (batch {BATCH_SIZE}, {args.steps} steps, best of {args.repeats})")
    print(f"TRL DPOTrainer:  {trl * 1e3:.1f} ms/step (batch {BATCH_SIZE}, {args.steps} steps, best of {args.repeats})")
    print(f"cores={os.cpu_count()} load_1min={os.getloadavg()[0]:.2f}")
    print(f"ratio_trl_over_llm2={trl / llm2:.2f}")


if __name__ == "__main__":
    main()
