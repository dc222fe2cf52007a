"""Preference pairs from a file or the hub, split into training and held-out pairs, tokenized the way TRL's
DPOTrainer tokenizes them, with the reference model's log-probabilities computed once.

``prepare`` (the trusted main process) builds two cache files: the training file (the training pairs' tokens, the
reference's log-probs on them, the local path of the base model) and the scoring file (the held-out pairs and their
prompts). A worker or a candidate's process loads only the training file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm2.task_api import cache, world_secret
from llm2.tasks.preference_hf.models import (
    device_for,
    dtype_name,
    load_causal_lm,
    load_tokenizer,
    local_model_path,
    one_line,
)
from llm2.tasks.preference_hf.settings import PreferenceHFSettings

VERSION = 2  # bump when what the cache files hold changes
FILE_SUFFIXES = (".json", ".jsonl", ".parquet")
REFERENCE_BATCH_PAIRS = 4  # pairs per forward pass when computing the reference's log-probs


@dataclass(frozen=True)
class TokenizedPairs:
    """Pairs as TRL tokenizes them: prompt, chosen and rejected token ids, and (training pairs) the reference's
    summed completion log-probs (the same sums TRL's DPOTrainer computes)."""

    prompt_ids: list[list[int]]
    chosen_ids: list[list[int]]
    rejected_ids: list[list[int]]
    reference_chosen: list[float]
    reference_rejected: list[float]

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def rows(self) -> list[dict[str, Any]]:
        """As a TRL dataset's rows (with ``ref_*_logps``, TRL's names for precomputed reference log-probs)."""
        return [{"prompt_ids": p, "chosen_ids": c, "rejected_ids": r, "ref_chosen_logps": rc,
                 "ref_rejected_logps": rr}
                for p, c, r, rc, rr in zip(self.prompt_ids, self.chosen_ids, self.rejected_ids,
                                           self.reference_chosen, self.reference_rejected)]

    def subset(self, indices: list[int]) -> TokenizedPairs:
        return TokenizedPairs(*([getattr(self, f.name)[i] for i in indices] for f in dataclasses.fields(self)))


# -- the cache files ----------------------------------------------------------------------------------------------
def _path_fingerprint(text: str) -> Any:
    """A local file or directory: its files' names, sizes and modification times (edits rebuild the cache); a hub
    id: the id itself."""
    path = Path(text).expanduser()
    if not path.exists():
        return text
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [str(path.resolve()), [(str(p.relative_to(path)) if p != path else p.name, p.stat().st_size,
                                   p.stat().st_mtime_ns) for p in files[:10_000]]]


def cache_key(settings: PreferenceHFSettings) -> str:
    """What the cached data depends on: the model and data (by path and file stats), the split, the sizes, the
    seed, the truncation and the precision the reference log-probs were computed in. Never the training seed,
    β, or the training budget."""
    basis = {"version": VERSION, "model": _path_fingerprint(settings.model),
             "dataset": _path_fingerprint(settings.dataset), "split": settings.split,
             "eval_split": settings.eval_split, "train_size": settings.train_size, "eval_size": settings.eval_size,
             "data_seed": settings.data_seed, "max_length": settings.max_length,
             "dtype": dtype_name(device_for(settings)),
             # another world secret, another split: named by its fingerprint (a worker never reads the secret)
             "secret": world_secret.published_fingerprint()}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def cache_paths(settings: PreferenceHFSettings) -> tuple[Path, Path]:
    """(training file, scoring file)."""
    folder = cache.cache_dir() / "preference-hf"
    key = cache_key(settings)
    return folder / f"{key}-train.pt", folder / f"{key}-score.pt"


def require_model_and_data(settings: PreferenceHFSettings) -> None:
    if not settings.model:
        raise ValueError("task preference-hf needs model=PATH_OR_ID (a causal LM: a local directory or a hub id)")
    if not settings.dataset:
        raise ValueError("task preference-hf needs dataset=PATH_OR_ID (pairs with prompt/chosen/rejected)")


def prepare_data(settings: PreferenceHFSettings) -> None:
    """Build both cache files once (trusted main process)."""
    require_model_and_data(settings)
    world_secret.fingerprint()  # publishes it, for the files' names
    cache.build_many_once(list(cache_paths(settings)), lambda: build(settings))


def load_training_file(settings: PreferenceHFSettings) -> dict:
    """The training side's file: never the scoring file."""
    path, _ = cache_paths(settings)
    if not path.exists():
        raise ValueError(f"the training data for {settings.model} and {settings.dataset} has not been prepared "
                         f"(expected {path}); the main process prepares it before starting workers")
    return cache.load(path)


def load_scoring_file(settings: PreferenceHFSettings) -> dict:
    world_secret.fingerprint()  # the scorer is trusted: the secret in use, published for the name
    _, path = cache_paths(settings)
    if not path.exists():
        prepare_data(settings)
    return cache.load(path)


def pairs_from(record: dict) -> TokenizedPairs:
    """The pairs of a cache record (the scoring file's have no reference log-probs)."""
    reference = [record[k].tolist() if k in record else [] for k in ("ref_chosen_logps", "ref_rejected_logps")]
    return TokenizedPairs(record["prompt_ids"], record["chosen_ids"], record["rejected_ids"], *reference)


def build(settings: PreferenceHFSettings) -> list[dict]:
    """[training record, scoring record]."""
    model_path = local_model_path(settings.model)
    tokenizer = load_tokenizer(model_path)
    train_rows, eval_rows = split_rows(settings)
    device = device_for(settings)
    records = []
    for name, rows in (("train", train_rows), ("eval", eval_rows)):
        pairs = tokenize(rows, tokenizer, settings.max_length, name)
        records.append({"version": VERSION, "model_path": model_path, "prompt_ids": pairs.prompt_ids,
                        "chosen_ids": pairs.chosen_ids, "rejected_ids": pairs.rejected_ids})
    # the reference's log-probs of the training pairs, for training (the scorer computes its own, see score.py)
    model = load_causal_lm(model_path, dtype_name(device)).to(device).eval()
    training = pairs_from(records[0])
    chosen, rejected = pair_logps(model, training, len(training), REFERENCE_BATCH_PAIRS, tokenizer.pad_token_id,
                                  settings.max_length)
    records[0].update(ref_chosen_logps=chosen, ref_rejected_logps=rejected)
    # the prompts the scorer has the policy answer (reward-model fitness), as JSON: text or chat messages
    records[1]["prompts_json"] = json.dumps([prompt_of(row) for row in eval_rows])
    return records


def prompt_of(row: dict) -> Any:
    """A pair's prompt; for chat pairs without one, the conversation the two completions share (as TRL takes it)."""
    if "prompt" in row:
        return row["prompt"]
    from trl.data_utils import extract_prompt

    return extract_prompt(row)["prompt"]


# -- reading and splitting the pairs ------------------------------------------------------------------------------
def read_rows(source: str, split: str) -> list[dict]:
    """The rows of a local .json (a list), .jsonl or .parquet file, or of a split of a dataset folder or hub id."""
    path = Path(source).expanduser()
    try:
        if path.is_file():
            if path.suffix == ".jsonl":
                rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            elif path.suffix == ".json":
                rows = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(rows, list):
                    raise ValueError("a .json dataset must hold a list of pairs (use .jsonl for one pair a line)")
            elif path.suffix == ".parquet":
                import pyarrow.parquet

                rows = pyarrow.parquet.read_table(path).to_pylist()
            else:
                raise ValueError(f"unknown file type {path.suffix!r}; give one of {', '.join(FILE_SUFFIXES)}")
        else:
            import datasets

            rows = list(datasets.load_dataset(source, split=split))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the dataset {source}: {one_line(exc)}") from None
    except Exception as exc:
        raise ValueError(f"cannot load the dataset {source} (split {split}): {type(exc).__name__}: "
                         f"{one_line(exc)}") from None
    for number, row in enumerate(rows):
        if not isinstance(row, dict) or "chosen" not in row or "rejected" not in row:
            raise ValueError(f"{source}: pair {number} has no 'chosen' and 'rejected' (TRL's preference form: "
                             "prompt/chosen/rejected)")
    return [{k: row[k] for k in ("prompt", "chosen", "rejected") if k in row} for row in rows]


def split_rows(settings: PreferenceHFSettings) -> tuple[list[dict], list[dict]]:
    """(training pairs, held-out pairs), each a seeded choice; the two never share a pair. The choices mix the
    world secret into the data seed (trusted process only): a candidate that knows the seed and the data set still
    cannot tell which pairs are held out."""
    rows = read_rows(settings.dataset, settings.split)
    order = list(range(len(rows)))
    random.Random(world_secret.derive_seed("preference-hf", "split", settings.data_seed)).shuffle(order)
    if settings.eval_split is not None:
        held = read_rows(settings.dataset, settings.eval_split)
        held_order = list(range(len(held)))
        random.Random(world_secret.derive_seed("preference-hf", "held-out order", settings.data_seed)).shuffle(
            held_order)
        eval_rows = [held[i] for i in held_order[:settings.eval_size]]
        train_order = order
    else:
        if len(rows) <= settings.eval_size:
            raise ValueError(f"{settings.dataset} has {len(rows)} pairs: too few to hold out eval_size="
                             f"{settings.eval_size} and train on the rest (lower eval_size or give eval_split)")
        eval_rows = [rows[i] for i in order[:settings.eval_size]]
        train_order = order[settings.eval_size:]
    if settings.train_size is not None:
        if settings.train_size > len(train_order):
            raise ValueError(f"train_size={settings.train_size} but only {len(train_order)} training pairs remain")
        train_order = train_order[:settings.train_size]
    return [rows[i] for i in train_order], eval_rows


def tokenize(rows: list[dict], tokenizer: Any, max_length: int | None, name: str) -> TokenizedPairs:
    """TRL's own preparation of a preference dataset (prompt extraction, EOS, chat template, tokenization,
    dropping pairs whose prompt alone fills max_length), run once here instead of in every candidate's trainer."""
    import datasets

    from trl import DPOTrainer

    options = types.SimpleNamespace(dataset_num_proc=None, max_length=max_length, truncation_mode="keep_start")
    owner = types.SimpleNamespace(_tokenizer=tokenizer)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        prepared = DPOTrainer._prepare_dataset(owner, datasets.Dataset.from_list(rows), tokenizer, options, name)
    finally:
        if bars:
            datasets.enable_progress_bars()
    if len(prepared) == 0:
        raise ValueError(f"no {name} pair is left: every prompt fills max_length={max_length} tokens")
    return TokenizedPairs(list(prepared["prompt_ids"]), list(prepared["chosen_ids"]), list(prepared["rejected_ids"]),
                          [], [])


def collate(pairs: TokenizedPairs, indices: list[int], pad_token_id: int, max_length: int | None) -> dict:
    """A padded batch as TRL's collator makes it: chosen sequences first, then rejected."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    collator = DataCollatorForPreference(pad_token_id=pad_token_id, max_length=max_length)
    return collator([{"prompt_ids": pairs.prompt_ids[i], "chosen_ids": pairs.chosen_ids[i],
                      "rejected_ids": pairs.rejected_ids[i]} for i in indices])


def completion_logps(model: Any, batch: dict) -> Any:
    """Summed log-probabilities of each sequence's completion tokens ([2·pairs]: chosen, then rejected)."""
    import torch

    device = next(model.parameters()).device
    input_ids = batch["input_ids"].to(device)
    logits = model(input_ids=input_ids, attention_mask=batch["attention_mask"].to(device)).logits
    mask = batch["completion_mask"][:, 1:].to(device)
    sums = []
    for row in range(input_ids.shape[0]):  # one row at a time: a [length, vocabulary] float32 slab, not a batch
        log_probs = torch.log_softmax(logits[row, :-1].float(), dim=-1)
        token = log_probs.gather(-1, input_ids[row, 1:, None]).squeeze(-1)
        sums.append((token * mask[row]).sum())
    return torch.stack(sums)


def pair_logps(model: Any, pairs: TokenizedPairs, count: int, batch_pairs: int, pad_token_id: int,
               max_length: int | None) -> tuple[Any, Any]:
    """Summed completion log-probs of the first ``count`` pairs, ``batch_pairs`` pairs a forward pass: (chosen,
    rejected), float64 on the CPU. The batching changes the padding and so the low bits of the sums."""
    import torch

    chosen, rejected = [], []
    with torch.no_grad():
        for start in range(0, count, batch_pairs):
            indices = list(range(start, min(start + batch_pairs, count)))
            logps = completion_logps(model, collate(pairs, indices, pad_token_id, max_length)).double().cpu()
            chosen.append(logps[:len(indices)])
            rejected.append(logps[len(indices):])
    return torch.cat(chosen), torch.cat(rejected)
