"""Greedy generation with a Hugging Face causal LM: what the tasks that score a model's own answers share."""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def greedy_answers(model: Any, tokenizer: Any, texts: list[str], max_new_tokens: int, special_tokens: bool,
                   batch_size: int) -> list[str]:
    """Greedy answers (deterministic) to ``texts``, in batches padded on the left (generation continues every row
    from its last prompt token). ``special_tokens``: add the tokenizer's own (BOS), as TRL does for plain-text
    prompts; a chat template writes its own."""
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[str] = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=special_tokens).to(device)
            output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
            answers += tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return answers
