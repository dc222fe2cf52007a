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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attention = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                   dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(attention.transpose(1, 2).reshape(batch, length, width)))
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

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [batch, length, vocab] for the next token at every position."""
        positions = torch.arange(tokens.shape[1])
        x = self.drop(self.token_embedding(tokens) + self.position_embedding(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def completion_logps(model: nn.Module, sequences: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """Per-token log-probabilities [batch, completion] of the completion part of ``sequences``."""
    logits = model(sequences[:, :-1])[:, prompt_length - 1:]
    targets = sequences[:, prompt_length:]
    return torch.log_softmax(logits, dim=-1).gather(2, targets.unsqueeze(2)).squeeze(2)


@torch.no_grad()
def sample(model: nn.Module, prompts: torch.Tensor, completion_length: int,
           generator: torch.Generator) -> torch.Tensor:
    """Full sequences [batch, prompt + completion], completions drawn at temperature 1.

    No KV cache: sequences are at most 20 tokens, where recomputing the prefix costs less than cache bookkeeping.
    """
    sequences = prompts
    for _ in range(completion_length):
        probs = torch.softmax(model(sequences)[:, -1], dim=-1)
        sequences = torch.cat([sequences, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return sequences
