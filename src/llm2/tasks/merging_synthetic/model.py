"""The tiny causal transformer of the synthetic merging world, with Llama's parameter names.

Two pre-norm blocks (RMSNorm, four-head attention with separate q/k/v/o projections, a GELU MLP), learned positions
and an untied output head, no biases: 110k parameters in 20 tensors whose names read like a Hugging Face Llama's
(``model.layers.0.self_attn.q_proj.weight``), so rules that treat layers by name carry over to real models.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from llm2.tasks.merging_synthetic.skills import SEQUENCE_LENGTH, VOCABULARY

WIDTH, HEADS, LAYERS = 64, 4, 2


class RMSNorm(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(width, width, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        mixed = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)),
                                               is_causal=True)
        return self.o_proj(mixed.transpose(1, 2).reshape(batch, length, width))


class MLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.up_proj = nn.Linear(width, 4 * width, bias=False)
        self.down_proj = nn.Linear(4 * width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.up_proj(x)))


class Layer(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.input_layernorm = RMSNorm(width)
        self.self_attn = Attention(width, heads)
        self.post_attention_layernorm = RMSNorm(width)
        self.mlp = MLP(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    def __init__(self, width: int, heads: int, layers: int):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCABULARY, width)
        self.embed_positions = nn.Embedding(SEQUENCE_LENGTH, width)
        self.layers = nn.ModuleList(Layer(width, heads) for _ in range(layers))
        self.norm = RMSNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(tokens) + self.embed_positions.weight[:tokens.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class TinyLM(nn.Module):
    def __init__(self, width: int = WIDTH, heads: int = HEADS, layers: int = LAYERS):
        super().__init__()
        self.model = Body(width, heads, layers)
        self.lm_head = nn.Linear(width, VOCABULARY, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.model(tokens))


def answer_loss(model: TinyLM, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the answer tokens only (the prompt is given, as in instruction tuning)."""
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits[targets], tokens[:, 1:][targets])


@torch.no_grad()
def solved(model: TinyLM, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per problem, whether greedy decoding writes the exact answer and its EOS.

    Greedy decoding is right exactly when, at every answer position, the most likely next token given the correct
    prefix is the correct one: so one teacher-forced pass gives the exact-match of generation, without a decoding
    loop.
    """
    predicted = model(tokens[:, :-1]).argmax(-1)
    return ((predicted == tokens[:, 1:]) | ~targets).all(dim=1)


def model_from_state(state: dict[str, torch.Tensor]) -> TinyLM:
    model = TinyLM(width=state["model.embed_tokens.weight"].shape[1])
    model.load_state_dict(state)
    return model.eval()
