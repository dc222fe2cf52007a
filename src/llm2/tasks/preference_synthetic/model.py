"""The tiny causal transformer used as reference and policy (nanoGPT-shaped: pre-norm blocks, learned positions)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from llm2.tasks.preference_synthetic.config import WorldConfig


class Block(nn.Module):
    def __init__(self, config: WorldConfig):
        super().__init__()
        self.heads = config.heads
        self.dropout = config.dropout
        self.norm1 = nn.LayerNorm(config.d_model)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, 4 * config.d_model), nn.GELU(),
                                 nn.Linear(4 * config.d_model, config.d_model))
        self.drop = nn.Dropout(config.dropout)
        future = torch.ones(config.sequence_length, config.sequence_length, dtype=torch.bool).triu(1)
        self.register_buffer("future", future, persistent=False)

    def forward(self, x: torch.Tensor, cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        if cache is not None:  # sampling: keep the keys and values of the tokens seen so far
            if cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        # Written out rather than F.scaled_dot_product_attention: its CPU kernels are several times slower on
        # these tiny heads. A whole sequence (or a prompt into an empty cache) needs the causal mask; sampling then
        # feeds one token at a time, which may see all of the cache.
        scores = (q @ k.transpose(2, 3)) * (q.shape[-1] ** -0.5)
        if length > 1:
            scores = scores.masked_fill(self.future[:length, :length], float("-inf"))
        weights = F.dropout(torch.softmax(scores, dim=-1), self.dropout, self.training)
        x = x + self.drop(self.proj((weights @ v).transpose(1, 2).reshape(batch, length, width)))
        return x + self.drop(self.mlp(self.norm2(x)))


class TinyGPT(nn.Module):
    def __init__(self, config: WorldConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.sequence_length, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor, caches: list[dict] | None = None, start: int = 0) -> torch.Tensor:
        """Logits [batch, length, vocab] for the next token at every position.

        With ``caches`` (one dict per block, empty at first) the tokens continue a prefix of ``start`` tokens.
        """
        positions = torch.arange(start, start + tokens.shape[1])
        x = self.drop(self.token_embedding(tokens) + self.position_embedding(positions))
        for index, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[index])
        return self.head(self.norm(x))


def completion_logps(model: nn.Module, sequences: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """Per-token log-probabilities [batch, completion] of the completion part of ``sequences``."""
    logits = model(sequences[:, :-1])[:, prompt_length - 1:]
    targets = sequences[:, prompt_length:]
    return torch.log_softmax(logits, dim=-1).gather(2, targets.unsqueeze(2)).squeeze(2)


@torch.no_grad()
def sample(model: nn.Module, prompts: torch.Tensor, completion_length: int,
           generator: torch.Generator) -> torch.Tensor:
    """Full sequences [batch, prompt + completion], completions drawn at temperature 1 (with a KV cache)."""
    caches: list[dict] = [{} for _ in model.blocks]
    logits = model(prompts, caches)[:, -1]
    tokens = [prompts]
    for position in range(prompts.shape[1], prompts.shape[1] + completion_length):
        tokens.append(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))
        if position + 1 < prompts.shape[1] + completion_length:
            logits = model(tokens[-1], caches, start=position)[:, -1]
    return torch.cat(tokens, dim=1)
