"""Loading Hugging Face models and tokenizers for the preference-hf task: where, in which precision, on which
device, and the adapter (LoRA) configuration. Every failure becomes a one-line ValueError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm2.errors import first_line
from llm2.tasks.preference_hf.settings import PreferenceHFSettings

# Files a model needs from the hub (safetensors weights, configs, tokenizer files; no pickled .bin weights).
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def one_line(exc: BaseException) -> str:
    return first_line(exc, limit=300)


def device_for(settings: PreferenceHFSettings) -> str:
    """"cuda" or "cpu". With device auto, a GPU when one is visible. (A spawned child asks NVML, not CUDA, see
    the sandbox's runner: CUDA must start only once the process is confined.)"""
    if settings.device != "auto":
        return settings.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def dtype_name(device: str) -> str:
    """bf16 on a GPU (the paper's setting), float32 on the CPU (bf16 matmuls are slow there)."""
    return "bfloat16" if device == "cuda" else "float32"


def local_model_path(source: str) -> str:
    """A local directory as an absolute path; a hub id downloaded (safetensors only) into the hub's cache."""
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        raise ValueError(f"{source} is a file; a model is a directory written by save_pretrained, or a hub id")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(source, allow_patterns=HUB_PATTERNS)
    except Exception as exc:
        raise ValueError(f"cannot find the model {source!r}: not a local directory, and the hub answered "
                         f"{type(exc).__name__}: {one_line(exc)}") from None


def weight_bytes(path: str) -> int:
    """Bytes of weights in a model directory (0 when it is not a local directory yet)."""
    folder = Path(path)
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)


def quiet() -> None:
    """No progress bars or info lines from transformers (they would fill logs and captured output)."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    quiet()

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise ValueError(f"cannot load a tokenizer from {path}: {type(exc).__name__}: {one_line(exc)}") from None
    if tokenizer.eos_token is None:
        raise ValueError(f"the tokenizer in {path} has no EOS token; TRL ends every completion with it")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # as TRL does
    return tokenizer


def load_causal_lm(path: str, dtype: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    quiet()
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except Exception as exc:
        raise ValueError(f"cannot load a causal language model from {path}: {type(exc).__name__}: "
                         f"{one_line(exc)}") from None


def load_reward_model(source: str, device: str) -> tuple[Any, Any]:
    """(model, tokenizer) of a sequence-classification reward model with one output."""
    import torch
    from transformers import AutoModelForSequenceClassification

    path = local_model_path(source)
    tokenizer = load_tokenizer(path)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=getattr(torch, dtype_name(device)))
    except Exception as exc:
        raise ValueError(f"cannot load a reward model from {path}: {type(exc).__name__}: {one_line(exc)}") from None
    if model.config.num_labels != 1:
        raise ValueError(f"the reward model in {path} has {model.config.num_labels} outputs; it needs one score")
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


def lora_config(settings: PreferenceHFSettings) -> Any:
    """LoRA on every linear layer but the LM head (TRL computes log-probs from its weight directly)."""
    from peft import LoraConfig

    return LoraConfig(r=settings.lora, lora_alpha=settings.lora_scale, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")

