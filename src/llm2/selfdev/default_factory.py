"""The offline default factory: a tiny causal LM (GPT-2 layout, random init) trained on the programs the task's
offline proposer writes, built once per task and configuration and cached like a world.

The tokenizer is a byte-level BPE learnt from the corpus with one twist: pieces may run to the end of a line (the
only split is after each newline), so a line the corpus repeats becomes one token and a program is a few dozen
tokens. That keeps training and sampling cheap on a CPU, and makes the model's new programs recombinations of
known lines with new constants, most of them valid and few of them good.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from llm2.selfdev.factory import Factory, Manifest
from llm2.selfdev.prompting import short_prompt

VERSION = 1  # bump when the construction changes, so stale caches are not reused
PAD, EOS = "<pad>", "<eos>"


@dataclass(frozen=True)
class TinyFactoryConfig:
    programs: int = field(default=480, metadata={"help": "programs the offline proposer writes for the corpus"})
    chains: int = field(default=16, metadata={"help": "independent walks of the offline proposer"})
    baseline_copies: int = field(default=2, metadata={"help": "how often each baseline appears in the corpus"})
    vocab_size: int = field(default=2048, metadata={"help": "BPE vocabulary learnt from the corpus"})
    layers: int = field(default=3, metadata={"help": "transformer blocks"})
    width: int = field(default=128, metadata={"help": "model width"})
    heads: int = field(default=4, metadata={"help": "attention heads"})
    steps: int = field(default=1000, metadata={"help": "training steps on the corpus"})
    batch_size: int = field(default=16, metadata={"help": "programs per training step"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW learning rate (linear warm-up, then linear decay)"})
    seed: int = field(default=0, metadata={"help": "seed of the corpus, the initial weights and the batches"})

    def __post_init__(self) -> None:
        for name in ("programs", "chains", "baseline_copies", "layers", "width", "heads", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be a multiple of heads ({self.heads})")
        if not 64 <= self.vocab_size <= 65536:
            raise ValueError(f"vocab_size must be between 64 and 65536, not {self.vocab_size}")
        if not 0 < self.lr <= 1:
            raise ValueError(f"lr must be in (0, 1], not {self.lr}")
        if self.seed < 0:
            raise ValueError(f"seed must be 0 or more, not {self.seed}")


def cache_key(task, config: TinyFactoryConfig) -> str:
    """What the build reads: the task's name, prompt, baselines and offline proposer, the config, the version."""
    identity = {"task": task.name, "prompt": short_prompt(task), "proposer": task.offline_proposer,
                "baselines": {name: b.code for name, b in task.baselines.items()},
                "config": dataclasses.asdict(config), "version": VERSION}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(task, config: TinyFactoryConfig) -> Path:
    from llm2.task_api.cache import cache_dir

    return cache_dir() / "factories" / f"{task.name}-{cache_key(task, config)}.pt"


def ensure_default_factory(task, config: TinyFactoryConfig) -> Path:
    """Build (once, under the cache's lock) and return the cached file of the task's default factory."""
    from llm2.task_api.cache import build_once

    path = cache_path(task, config)
    build_once(path, lambda: build(task, config))
    return path


def materialize(task, config: TinyFactoryConfig, directory: Path) -> None:
    """Write the cached default factory as a checkpoint directory (model, tokenizer, manifest)."""
    from tokenizers import Tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from llm2.task_api.cache import load

    stored = load(ensure_default_factory(task, config))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(stored["tokenizer"]), pad_token=PAD,
                                        eos_token=EOS)
    model = GPT2LMHeadModel(GPT2Config(**json.loads(stored["model_config"])))
    model.load_state_dict(stored["state"])
    manifest = Manifest("plain", prompt=stored["prompt"], origin=json.loads(stored["origin"]))
    Factory(model, tokenizer, manifest, "default", "cpu").save_full(directory, manifest)


def build(task, config: TinyFactoryConfig) -> dict:
    """Corpus, tokenizer, model and its training; plain containers and tensors (the cache stores no code)."""
    import torch

    from llm2.selfdev.corpus import build_corpus
    from llm2.task_api.threads import single_thread

    started = time.perf_counter()
    prompt = short_prompt(task)
    corpus = build_corpus(task, config.programs, config.chains, config.baseline_copies, config.seed)
    tokenizer = _learn_tokenizer(corpus + [prompt], config.vocab_size)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    sequences = [prompt_ids + tokenizer(p, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                 for p in corpus]
    longest = max(map(len, sequences))
    model_config = dict(vocab_size=len(tokenizer), n_positions=max(512, 2 * longest + 64), n_embd=config.width,
                        n_layer=config.layers, n_head=config.heads, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    with single_thread():  # a tiny model: threads cost more than they give, and workers share the cores
        model, losses = _train(model_config, sequences, len(prompt_ids), tokenizer.pad_token_id, config)
    origin = {"kind": "offline default factory", "task": task.name, "proposer": task.offline_proposer,
              "corpus_programs": len(corpus), "distinct_programs": len(set(corpus)),
              "tokens_per_program": round(sum(map(len, sequences)) / len(sequences) - len(prompt_ids), 1),
              "parameters": sum(p.numel() for p in model.parameters()), "final_loss": round(losses[-1], 4),
              "build_seconds": round(time.perf_counter() - started, 1), "config": dataclasses.asdict(config),
              "version": VERSION}
    return {"tokenizer": tokenizer.backend_tokenizer.to_str(), "model_config": json.dumps(model_config),
            "state": {k: v.contiguous() for k, v in model.state_dict().items()}, "prompt": prompt,
            "origin": json.dumps(origin), "loss_trace": torch.tensor(losses)}


def _learn_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    # Split only after newlines: pieces may grow to whole lines (see the module's docstring).
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("\n", "merged_with_previous"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token=PAD, eos_token=EOS)


def _train(model_config: dict, sequences: list[list[int]], prompt_length: int, pad_id: int,
           config: TinyFactoryConfig):
    """Next-token loss on the programs (the prompt is context only); AdamW, warm-up then linear decay."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(config.seed)
    model = GPT2LMHeadModel(GPT2Config(**model_config))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    warmup = max(1, config.steps // 10)
    losses = []
    model.train()
    for step in range(config.steps):
        rows = [sequences[i] for i in torch.randint(len(sequences), (config.batch_size,), generator=generator)]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad_id)
        labels = torch.full((len(rows), width), -100)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            labels[r, prompt_length: len(row)] = torch.tensor(row[prompt_length:])
        mask = (torch.arange(width)[None, :] < torch.tensor([len(r) for r in rows])[:, None]).long()
        scale = min(1.0, (step + 1) / warmup) * max(0.05, 1 - step / config.steps)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * scale
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return model, losses
