"""``merging-hf``: merge real Hugging Face models with a candidate merge function and score the merged model on
question/answer pairs, as in the Self-Developing paper (a seed chat model and math experts, scored on GSM8k).

    llm2 evaluate --task merging-hf --task-option base=BASE --task-option experts=A,B \\
        --task-option eval=questions.jsonl [--task-option fitness=loglik] [--timeout 3600]

BASE, A and B are local model directories with safetensors weights, or Hugging Face model ids (downloaded once, in
the trusted main process, when the machine can reach the hub). The merge streams one tensor at a time
(llm2.tasks.merging_hf.streaming), so models larger than memory merge; the merged model is written in Hugging Face
format and scored by exact match of its greedy answers or by the log-likelihood of the reference answers, on a GPU
when there is one. A merge of large models takes minutes: give ``--timeout`` room for it.

How a candidate's merge runs: the warm worker opens the models (``training_data``: every safetensors file mapped
into memory, the small files read), so the confined child it forks (or a spawned one, before it confines itself)
reads them without any access to their directories. The child merges into ``./merged`` in its scratch directory
(``Runtime(output="directory")``); once it is dead the sandbox checks that directory (regular files of the model's
names only, safetensors headers valid, no more bytes than the merged model takes) and hands it to the scorer, which
loads only its safetensors weights, with the base model's config, generation config and tokenizer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm2.task_api.base import EvalSetting, MetricColumn, Runtime, TaskTexts, TensorSpec, TrainOutput
from llm2.tasks.merging.baselines import BASELINES
from llm2.tasks.merging.contract import checked_merge
from llm2.tasks.merging.task_base import MergingTask
from llm2.tasks.merging_hf.answers import load_questions
from llm2.tasks.merging_hf.score import QuestionScorer, device_name
from llm2.tasks.merging_hf.streaming import (DTYPES, MODEL_FILE_NAMES, MergeInputError, OpenModel, check_compatible,
                                             merge_streaming, small_files, tensor_table)

FITNESS = ("exact-match", "loglik")
GIB = 1024**3
MERGED_DIR = "merged"  # inside the candidate's working directory (its scratch)


@dataclass(frozen=True)
class MergingHFSettings:
    base: str = field(default="", metadata={"help": "the seed model: a local directory or a Hugging Face model id"})
    experts: tuple[str, ...] = field(default=(), metadata={
        "help": "the expert models fine-tuned from base, comma-separated (directories or model ids)"})
    eval: str = field(default="", metadata={
        "help": "JSONL file of {\"question\": ..., \"answer\": ...} (GSM8k style: the number after '####')"})
    fitness: str = field(default="exact-match", metadata={
        "help": "exact-match (greedy answers, the number after '####' or the last number) or loglik (the mean "
                "per-token log-likelihood of the reference answers: no generation, much cheaper)"})
    limit: int | None = field(default=None, metadata={"help": "score only the first N questions (none: all)"})
    max_new_tokens: int = field(default=256, metadata={"help": "longest generated answer, in tokens"})
    batch_size: int = field(default=8, metadata={"help": "questions generated at once"})
    prompt: str = field(default="auto", metadata={
        "help": "auto (the tokenizer's chat template, else plain), plain ('Question: ...\\nAnswer:'), or a "
                "template containing {question}"})
    shard_mb: int = field(default=2048, metadata={"help": "largest merged weight file, in MB"})
    heldout_experts: tuple[str, ...] = field(default=(), metadata={
        "help": "experts never seen during discovery, for the held-out check (comma-separated)"})

    def __post_init__(self) -> None:
        if self.fitness not in FITNESS:
            raise ValueError(f"fitness must be one of {', '.join(FITNESS)}, not {self.fitness!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be 1 or more, got {self.limit}")
        for name in ("max_new_tokens", "batch_size", "shard_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be 1 or more, got {getattr(self, name)}")
        if self.prompt not in ("auto", "plain") and "{question}" not in self.prompt:
            raise ValueError("prompt must be auto, plain, or a template containing {question}")


@dataclass(frozen=True)
class MergeInputs:
    """The training side: the models, opened (their weights are read tensor by tensor while merging)."""

    base: OpenModel
    experts: tuple[OpenModel, ...]
    shard_bytes: int


@dataclass(frozen=True)
class MergeSize:
    """What a merge of these models writes and holds, from the base's headers: for the sandbox's limits."""

    output_bytes: int  # the merged directory: weights, headers, index and small files, with a little room
    largest_tensor: int  # the largest parameter's bytes in float32, as the merge function gets it


def resolve_model(spec: str, download: bool) -> Path:
    """A local directory as is; otherwise a Hugging Face model id, from the local hub cache (downloading its
    safetensors, config and tokenizer files first when ``download``)."""
    if Path(spec).is_dir():
        return Path(spec)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=not download,
                                      allow_patterns=["*.safetensors", "*.json", "*.model", "*.txt", "*.jinja"]))
    except Exception as exc:  # noqa: BLE001 - any hub failure is reported as one line
        raise MergeInputError(f"model {spec!r} is not a local directory and could not be fetched from the "
                              f"Hugging Face hub ({type(exc).__name__})") from None


class MergingHFTask(MergingTask):
    name = "merging-hf"
    settings_type = MergingHFSettings
    texts = TaskTexts(
        kind="model-merging algorithm",
        description=(
            "The task: merging large language models. A seed (base) model and expert models fine-tuned from it\n"
            "(for example a chat model and mathematics experts) are merged by your function, parameter by\n"
            "parameter, into one model that should keep the seed's general ability and gain the experts' skills.\n"
            "Nothing is trained: the merged weights are evaluated as they are, on held-out questions."),
        fitness=("the merged model's exact-match accuracy on held-out questions (its final number equals the\n"
                 "reference's), 0 to 1; higher is better"),
        fitness_name="exact match",
        expertise=("You are deeply familiar with model merging (task arithmetic, TIES, DARE, model soups, SLERP,\n"
                   "Fisher and RegMean merging) and the weight-space geometry of fine-tuned language models."),
        rules=("- base and every expert are float32 tensors; return one tensor of base's shape.\n"
               "- Create new tensors on base's device (device=base.device): merging may run on a GPU.\n"
               "- Tensors can have hundreds of millions of entries: a few vectorised passes, no sorting of\n"
               "  the whole tensor more than once, no Python loops over elements."),
    )
    discovery_baselines = ("task_arithmetic", "ties", "dare_linear", "average")
    metric_columns = (
        MetricColumn("exact_match", "exact match", 3, better="higher"),
        MetricColumn("loglik", "answer log-lik", 3, better="higher"),
    )
    default_experts = 2

    def __init__(self) -> None:
        self._scorers: dict[MergingHFSettings, QuestionScorer] = {}
        self._sizes: dict[str, MergeSize] = {}

    def runtime(self, settings: MergingHFSettings) -> Runtime:
        """The merged model comes back as a directory; the file-size limit and memory follow the base model's size
        (the merge function holds a few float32 copies of one parameter per model at a time)."""
        size = self._size(settings)
        limit = size.output_bytes if size is not None else None
        memory = (len(settings.experts) + 6) * size.largest_tensor + GIB if size is not None else None
        cuda = device_name() == "cuda"
        return Runtime(start="spawn" if cuda else "fork", device="cuda" if cuda else "cpu", gpus=1 if cuda else 0,
                       output="directory", output_limit_bytes=limit, output_names=MODEL_FILE_NAMES,
                       memory_bytes=memory)

    def _size(self, settings: MergingHFSettings) -> MergeSize | None:
        """From the base's headers, once per base; None while the base cannot be found (``prepare`` says why)."""
        if settings.base not in self._sizes:
            try:
                base = resolve_model(settings.base, download=False)
                table = tensor_table(base)
            except MergeInputError:
                return None
            weights = sum(info.nbytes for info in table.values())
            largest = max((info.nbytes * 4 // DTYPES[info.dtype].itemsize for info in table.values()), default=0)
            # per tensor: its entry in a shard's header and in the index; per shard: a header's fixed part
            room = 1024 * len(table) + sum(len(c) for c in small_files(base).values()) + 1024**2
            self._sizes[settings.base] = MergeSize(weights + room, largest)
        return self._sizes[settings.base]

    # -- trusted main process ----------------------------------------------------------------------------------
    def prepare(self, settings: MergingHFSettings) -> None:
        if not settings.base or not settings.experts or not settings.eval:
            raise MergeInputError("merging-hf needs --task-option base=MODEL, experts=MODEL,MODEL,... and "
                                  "eval=FILE.jsonl")
        base = tensor_table(resolve_model(settings.base, download=True))
        experts = [tensor_table(resolve_model(e, download=True)) for e in settings.experts]
        check_compatible(base, experts, settings.experts)
        load_questions(settings.eval, settings.limit)

    # -- training side -----------------------------------------------------------------------------------------
    def training_data(self, settings: MergingHFSettings) -> MergeInputs:
        """The models opened (mapped, not loaded): a process forked from this one reads them without their paths."""
        return MergeInputs(OpenModel(resolve_model(settings.base, download=False)),
                           tuple(OpenModel(resolve_model(e, download=False)) for e in settings.experts),
                           settings.shard_mb * 1024**2)

    def output_spec(self, data: MergeInputs) -> dict[str, TensorSpec]:
        return {}  # the merged weights come back as a directory of files, not tensors

    def warm_up(self, settings: MergingHFSettings, data: MergeInputs) -> None:
        """What a merge imports, without writing a model (the default warm-up would merge one): the reference
        baseline on the contract's small tensors, and on the smallest real parameter, read from the maps."""
        from llm2.sandbox.loader import load_function

        fn = load_function(BASELINES[self.reference_baseline].code, self.contract)
        self.check_contract(fn, data)
        name = min(data.base.tensors, key=lambda n: data.base.tensors[n].nbytes)
        base = data.base.read(name)
        if base.is_floating_point():
            checked_merge(fn, name, base.float(), [e.read(name).float() for e in data.experts], "train")

    def train(self, fn: Callable[..., Any], data: MergeInputs, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        """Merge into ./merged (in the candidate's scratch: a relative path, as the directories above it may be
        closed to the candidate's user) tensor by tensor; the weights stay in files, handed back as a directory."""
        report = merge_streaming(fn, data.base, data.experts, MERGED_DIR, max_shard_bytes=data.shard_bytes,
                                 seed=setting.seed, device=device_name())
        return TrainOutput({}, [], steps=report.tensors, output_dir=MERGED_DIR)

    # -- scoring side ------------------------------------------------------------------------------------------
    def scorer(self, settings: MergingHFSettings) -> QuestionScorer:
        key = dataclasses.replace(settings, experts=(), heldout_experts=(), shard_mb=1)
        if key not in self._scorers:
            self._scorers[key] = QuestionScorer.from_settings(settings, resolve_model(settings.base, False))
        return self._scorers[key]

    # -- texts, held-out suite, export -------------------------------------------------------------------------
    def texts_for(self, settings: MergingHFSettings) -> TaskTexts:
        if settings.fitness == "loglik":
            return dataclasses.replace(self.texts, fitness_name="answer log-lik", fitness=(
                "the mean per-token log-likelihood of the reference answers to held-out questions under the\n"
                "merged model (0 or below); higher is better"))
        return self.texts

    def setting_text(self, settings: MergingHFSettings) -> str:
        experts = ", ".join(Path(e).name or e for e in settings.experts)
        return f"base {Path(settings.base).name or settings.base}, experts {experts}, {settings.fitness}"

    def heldout_settings(self, settings: MergingHFSettings) -> list[MergingHFSettings]:
        """The held-out experts in place of the discovery's, when given."""
        if settings.heldout_experts:
            return [dataclasses.replace(settings, experts=settings.heldout_experts, heldout_experts=())]
        return []

    def export_checkpoint(self, output: TrainOutput, settings: MergingHFSettings, out_dir: Path) -> dict[str, Any]:
        """A kept merged model in Hugging Face format: its weights (shards and index), the base's config and
        tokenizer (never the candidate's copies)."""
        import shutil

        out_dir = Path(out_dir)
        for path in Path(output.output_dir).iterdir():
            if path.name.endswith((".safetensors", ".safetensors.index.json")):
                shutil.copyfile(path, out_dir / path.name)
        base = resolve_model(settings.base, download=False)
        for name, data in small_files(base).items():
            if not name.endswith(".safetensors.index.json"):
                (out_dir / name).write_bytes(data)
        return {"base_model": settings.base, "library_name": "transformers", "tags": ["merge"]}
