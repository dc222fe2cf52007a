"""The algorithm factory: a causal LM that writes algorithms, loaded from a checkpoint directory or a model id.

A checkpoint directory holds ``factory.json`` (its manifest) and either the whole model (the offline default
factory, or any model fine-tuned in full) or nothing but pointers: a base model (a path or an id) and the LoRA
adapters of the iterations so far, merged into the base one after the other when loaded. Anything else given as
``--factory`` (a Hugging Face directory or id) is a seed factory with no manifest: a chat model is asked in its chat
template, a base model continues a plain transcript.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from llm2.errors import first_line
from llm2.files import write_text
from llm2.selfdev.prompting import FactoryPrompt

MANIFEST = "factory.json"
DEFAULT = "default"  # --factory default: the offline tiny factory built from the task's offline proposer


class FactoryError(Exception):
    """The factory cannot be loaded or cannot sample; the message says why, in one line."""


@dataclass(frozen=True)
class Manifest:
    format: str  # "plain": the model continues a text prompt | "chat": the chat template renders the messages
    prompt: str | None = None  # the prompt a plain factory was trained on (None: built from the task at run time)
    base: str | None = None  # where the weights are when this directory holds none (a path or a model id)
    adapters: tuple[str, ...] = ()  # LoRA adapter directories merged into base in order (relative to this file)
    origin: dict = field(default_factory=dict)  # what it was built or trained from (for people reading it)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "adapters": list(self.adapters)}, indent=1, sort_keys=True)

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        try:
            data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
            return cls(format=data["format"], prompt=data.get("prompt"), base=data.get("base"),
                       adapters=tuple(data.get("adapters") or ()), origin=dict(data.get("origin") or {}))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FactoryError(f"{directory / MANIFEST} is not a readable factory manifest: {exc}") from None


def base_location(directory: Path, base: str) -> str:
    """A manifest's base as a path or model id: a base starting with '.' is relative to the manifest's directory
    (a run's own checkpoints refer to each other that way, so a run directory can be moved)."""
    return str((directory / base).resolve()) if base.startswith(".") else base


def relative_base(location: str, directory: Path) -> str:
    """``location`` as a manifest in ``directory`` should name it: relative when it is a path (see base_location)."""
    path = Path(location)
    return os.path.relpath(path.resolve(), directory) if path.exists() else location


def write_manifest(directory: Path, manifest: Manifest) -> None:
    write_text(directory / MANIFEST, manifest.to_json())


def has_manifest(directory: str | os.PathLike) -> bool:
    return (Path(directory) / MANIFEST).is_file()


@dataclass(frozen=True)
class Sample:
    text: str  # the completion exactly as decoded (special tokens dropped)
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (the model ended it) | "length" (cut at max_new_tokens)


def pick_device(device: str = "auto") -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


class Factory:
    """A loaded factory: ``sample`` writes completions for one prompt."""

    def __init__(self, model, tokenizer, manifest: Manifest, label: str, device: str):
        self.model, self.tokenizer, self.manifest, self.label, self.device = model, tokenizer, manifest, label, device

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @classmethod
    def load(cls, spec: str | os.PathLike, device: str = "auto") -> Factory:
        """A checkpoint directory with a manifest, or any Hugging Face causal LM (directory or cached id)."""
        import torch

        device = pick_device(device)
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        directory = Path(spec)
        manifest = Manifest.read(directory) if has_manifest(directory) else None
        weights = str(directory) if manifest is None or manifest.base is None else base_location(directory,
                                                                                                   manifest.base)
        tokenizer_source = str(directory) if (directory / "tokenizer_config.json").is_file() else weights
        try:
            tokenizer, model = _load_pretrained(weights, tokenizer_source, dtype)
            for adapter in (manifest.adapters if manifest else ()):
                model = _merge_adapter(model, (directory / adapter).resolve())
        except (OSError, ValueError, ImportError, RuntimeError) as exc:
            raise FactoryError(f"could not load the factory {str(spec)!r}: {first_line(exc)}") from None
        if manifest is None:
            manifest = Manifest("chat" if getattr(tokenizer, "chat_template", None) else "plain",
                                origin={"model": str(spec)})
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.to(device).eval()
        return cls(model, tokenizer, manifest, str(spec), device)

    @property
    def asks_with_messages(self) -> bool:
        """False for a factory trained on a prompt of its own (the offline default factory and its refinements)."""
        return not (self.manifest.format == "plain" and self.manifest.prompt)

    def prompt_for(self, messages) -> FactoryPrompt:
        """The prompt this factory is asked with: its own trained prompt (plain), or the messages (chat), or their
        transcript (a base model without a chat template)."""
        from llm2.selfdev.prompting import plain_prompt, transcript

        if self.manifest.format == "plain":
            return plain_prompt(self.manifest.prompt) if self.manifest.prompt else FactoryPrompt(
                tuple(messages), transcript(messages))
        return FactoryPrompt(tuple(messages), None)

    def prompt_ids(self, prompt: FactoryPrompt):
        if prompt.text is not None:
            return self.tokenizer(prompt.text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        chat = [{"role": m.role, "content": m.content} for m in prompt.messages]
        encoded = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True,
                                                     return_dict=True, return_tensors="pt")
        return encoded["input_ids"]

    def sample(self, prompt: FactoryPrompt, n: int, temperature: float, seed: int,
               max_new_tokens: int) -> list[Sample]:
        """``n`` completions of ``prompt`` in one batch: plain temperature sampling (no top-k or top-p), greedy at
        temperature 0, reproducible for a seed.

        The draws come from a generator of this call's own, not torch's global one: the run scores candidates in
        other threads of this process meanwhile, and anything random there must not change what is sampled here.
        """
        import torch

        ids = self.prompt_ids(prompt).to(self.device)
        context = getattr(self.model.config, "n_positions", None) or getattr(self.model.config,
                                                                             "max_position_embeddings", None)
        if context:  # a completion never runs past the model's positions
            max_new_tokens = min(max_new_tokens, context - ids.shape[1])
            if max_new_tokens < 1:
                raise FactoryError(f"the prompt ({ids.shape[1]} tokens) fills the factory's whole context "
                                   f"({context} tokens)")
        generator = torch.Generator(device=self.device).manual_seed(seed)
        eos = self.tokenizer.eos_token_id
        try:
            with torch.no_grad():
                rows = _sample_tokens(self.model, ids.repeat(n, 1), temperature, generator, max_new_tokens, eos)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise FactoryError(f"sampling from the factory {self.label!r} failed: {first_line(exc)}") from None
        samples = []
        for row in rows:
            ended = eos in row
            tokens = row[: row.index(eos)] if ended else row
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            samples.append(Sample(text, int(ids.shape[1]), len(tokens) + int(ended), "stop" if ended else "length"))
        return samples

    def save_full(self, directory: Path, manifest: Manifest) -> None:
        """The whole model, its tokenizer and the manifest (for factories small enough to copy per iteration)."""
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        write_manifest(directory, replace(manifest, base=None, adapters=()))

    def release(self) -> None:
        """Free the model's memory (an accelerator's too) before the next load."""
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def check_factory(spec: str) -> None:
    """Fail before anything is spent when ``spec`` names no loadable factory (reads configs, not weights)."""
    from transformers import AutoConfig

    source = Path(spec)
    try:
        if has_manifest(source):
            manifest = Manifest.read(source)
            AutoConfig.from_pretrained(base_location(source, manifest.base) if manifest.base else str(source))
            missing = [a for a in manifest.adapters if not (source / a).is_dir()]
            if missing:
                raise FactoryError(f"the factory {spec!r} names an adapter that is not there: {missing[0]}")
        else:
            AutoConfig.from_pretrained(spec)
    except (OSError, ValueError, ImportError) as exc:
        raise FactoryError(f"no factory at {spec!r}: give 'default', a Hugging Face causal LM (a directory, or an "
                           f"id in the local cache) or a factory checkpoint ({first_line(exc)})") from None


def seed_checkpoint(spec: str, directory: Path) -> None:
    """Iteration 0's checkpoint for a factory given by the user: a manifest pointing at it (no weights copied).

    A checkpoint of another self-develop run keeps its base and adapters (as absolute paths: they stay outside);
    any other model is the base, its format read from its tokenizer (saved here too: it is small).
    """
    from transformers import AutoTokenizer

    source = Path(spec)
    if has_manifest(source):
        manifest = Manifest.read(source)
        base = base_location(source, manifest.base) if manifest.base else str(source.resolve())
        chain = tuple(str((source / a).resolve()) for a in manifest.adapters)  # outside this run: absolute
        tokenizer_source = str(source) if (source / "tokenizer_config.json").is_file() else base
        manifest = replace(manifest, base=base, adapters=chain, origin={"seed_factory": str(spec)})
    else:
        tokenizer_source = str(source.resolve()) if source.is_dir() else spec
        manifest = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    except (OSError, ValueError, ImportError) as exc:
        raise FactoryError(f"could not load the factory {spec!r}: {first_line(exc)}") from None
    if manifest is None:
        manifest = Manifest("chat" if getattr(tokenizer, "chat_template", None) else "plain",
                            base=str(source.resolve()) if source.is_dir() else spec, origin={"seed_factory": spec})
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    write_manifest(directory, manifest)


def _sample_tokens(model, batch, temperature: float, generator, max_new_tokens: int, eos: int | None) -> list[list[int]]:
    """Token by token with the model's cache; every row shares the prompt, so there is no padding."""
    import torch

    rows = batch.shape[0]
    done = torch.zeros(rows, dtype=torch.bool, device=batch.device)
    mask = torch.ones_like(batch)
    step_input, cache, written = batch, None, []
    for _ in range(max_new_tokens):
        output = model(input_ids=step_input, attention_mask=mask, past_key_values=cache, use_cache=True)
        logits = output.logits[:, -1, :].float()
        cache = output.past_key_values
        if temperature > 0:
            probabilities = torch.softmax(logits / temperature, dim=-1)
            token = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
        else:
            token = logits.argmax(dim=-1)
        if eos is not None:
            token = torch.where(done, torch.full_like(token, eos), token)
            done |= token == eos
        written.append(token)
        if bool(done.all()):
            break
        step_input = token[:, None]
        mask = torch.cat([mask, torch.ones_like(step_input)], dim=1)
    return torch.stack(written, dim=1).tolist() if written else [[] for _ in range(rows)]


def _load_pretrained(weights: str, tokenizer_source: str, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    model = AutoModelForCausalLM.from_pretrained(weights, dtype=dtype)
    return tokenizer, model


def _merge_adapter(model, adapter: Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
