"""A kept candidate's trained weights in Hugging Face's format: the whole model (``save_pretrained``) or, with
LoRA, a PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``), with the tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from llm2.tasks.preference_hf.models import load_causal_lm, load_tokenizer, local_model_path, lora_config
from llm2.tasks.preference_hf.settings import PreferenceHFSettings


def write_checkpoint(weights: dict[str, torch.Tensor], settings: PreferenceHFSettings, out_dir: Path) -> dict[str, Any]:
    """Write the folder; return the model card's facts (base model, library, tags, how to load it)."""
    base = local_model_path(settings.model)
    tokenizer = load_tokenizer(base)
    out_dir.mkdir(parents=True, exist_ok=True)
    if settings.lora:
        from peft import LoraConfig
        from safetensors.torch import save_file

        config: LoraConfig = lora_config(settings)
        config.base_model_name_or_path = settings.model
        config.save_pretrained(str(out_dir))
        save_file({name: tensor.contiguous() for name, tensor in weights.items()},
                  str(out_dir / "adapter_model.safetensors"))
        tokenizer.save_pretrained(str(out_dir))
        usage = (f"Load it with PEFT: `AutoPeftModelForCausalLM.from_pretrained(\"{out_dir.name}\")` (the base "
                 f"model, `{settings.model}`, must be reachable).")
        return {"base_model": settings.model, "library_name": "peft", "tags": ["trl", "dpo", "lora"],
                "usage": usage}
    dtype = str(next(iter(weights.values())).dtype).removeprefix("torch.")
    model = load_causal_lm(base, dtype)
    expected = set(model.state_dict())
    if set(weights) != expected:
        raise ValueError(f"the kept weights do not match {settings.model}: missing "
                         f"{sorted(expected - set(weights))[:3]}, unexpected {sorted(set(weights) - expected)[:3]}")
    model.load_state_dict(weights)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    usage = f"Load it with transformers: `AutoModelForCausalLM.from_pretrained(\"{out_dir.name}\")`."
    return {"base_model": settings.model, "library_name": "transformers", "tags": ["trl", "dpo"], "usage": usage}
