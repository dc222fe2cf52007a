"""The skills of the synthetic merging world: small sequence-to-sequence tasks in one shared prompt format.

A problem is ``[skill token] x_1 … x_L [SEP] y_1 … y_K [EOS]``: the skill token says what to do, x is a sequence
of 3 to 10 symbols and y the answer. Every skill writes its symbols with its own alphabet of ALPHABET tokens (as
mathematics and code use different tokens than chat), so that an expert's fine-tuning moves mostly its own rows of
the embedding and output matrices and its task vector interferes less with the other experts'.

Problems are split once and for all between training and scoring by a hash of (skill, input, world seed): about
one input in HELDOUT_SHARE is reserved for scoring and never appears in any training batch, so exact-match on
held-out problems measures the skill, not memory of the training set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

PAD, SEP, EOS = 0, 1, 2
ALPHABET = 8  # symbols per skill
MIN_LENGTH, MAX_LENGTH = 3, 10  # of the input x
SEQUENCE_LENGTH = 1 + MAX_LENGTH + 1 + MAX_LENGTH + 1  # skill, x, SEP, y (never longer than x), EOS
HELDOUT_SHARE = 8  # one input in 8 is reserved for scoring


def _swap_pairs(x: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    even = x.shape[1] - x.shape[1] % 2
    out[:, 0:even:2], out[:, 1:even:2] = x[:, 1:even:2], x[:, 0:even:2]
    return out


@dataclass(frozen=True)
class Skill:
    name: str
    describe: str
    apply: Callable[[torch.Tensor], torch.Tensor]  # inputs [n, L] in [0, ALPHABET) -> answers [n, K], K <= L


# The pool, in a fixed order (a skill's index fixes its token and alphabet). Each is learnable by the 2-layer model;
# the default world's seed solves about two thirds of copy, increment and complement, under a third of sort and
# sort_desc.
SKILLS: dict[str, Skill] = {s.name: s for s in (
    Skill("copy", "repeat the input", lambda x: x),
    Skill("reverse", "the input backwards", lambda x: x.flip(1)),
    Skill("sort", "the input in ascending order", lambda x: x.sort(dim=1).values),
    Skill("increment", "every symbol plus one, modulo the alphabet", lambda x: (x + 1) % ALPHABET),
    Skill("rotate", "the input rotated left by one", lambda x: x.roll(-1, dims=1)),
    Skill("complement", "every symbol s replaced by its mirror 7 - s", lambda x: ALPHABET - 1 - x),
    Skill("swap", "neighbouring pairs swapped", _swap_pairs),
    Skill("sort_desc", "the input in descending order", lambda x: x.sort(dim=1, descending=True).values),
)}
SKILL_NAMES = tuple(SKILLS)
FIRST_SKILL_TOKEN = 3
FIRST_SYMBOL_TOKEN = FIRST_SKILL_TOKEN + len(SKILLS)
VOCABULARY = FIRST_SYMBOL_TOKEN + ALPHABET * len(SKILLS)


def skill_index(name: str) -> int:
    return SKILL_NAMES.index(name)


def _reserved(skill: int, x: torch.Tensor, world_seed: int) -> torch.Tensor:
    """Whether each input row is reserved for scoring: a multiplicative hash of (skill, length, symbols, seed)."""
    key = torch.full((x.shape[0],), (world_seed * 1_000_003 + skill * 7_919 + x.shape[1]) % 2**31, dtype=torch.int64)
    for column in range(x.shape[1]):
        key = (key * 1_103_515_245 + x[:, column] + 12_345) % 2**31
    return (key >> 8) % HELDOUT_SHARE == 0


@dataclass(frozen=True)
class Problems:
    """Sequences [n, SEQUENCE_LENGTH] and the mask [n, SEQUENCE_LENGTH - 1] of positions whose next token is part
    of the answer (the answer's symbols and its EOS): the positions training and scoring look at."""

    tokens: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.tokens.shape[0]


def problems(skill: int, count: int, generator: torch.Generator, world_seed: int, heldout: bool) -> Problems:
    """``count`` problems of one skill, from the training side of the split or the held-out side."""
    lengths = torch.randint(MIN_LENGTH, MAX_LENGTH + 1, (count,), generator=generator)
    tokens = torch.full((count, SEQUENCE_LENGTH), PAD, dtype=torch.int64)
    targets = torch.zeros((count, SEQUENCE_LENGTH - 1), dtype=torch.bool)
    alphabet = FIRST_SYMBOL_TOKEN + ALPHABET * skill
    for length in range(MIN_LENGTH, MAX_LENGTH + 1):
        rows = (lengths == length).nonzero().flatten()
        if rows.numel() == 0:
            continue
        x = _sample_side(skill, length, rows.numel(), generator, world_seed, heldout)
        y = SKILLS[SKILL_NAMES[skill]].apply(x)
        answer = y.shape[1]
        tokens[rows, 0] = FIRST_SKILL_TOKEN + skill
        tokens[rows, 1:1 + length] = alphabet + x
        tokens[rows, 1 + length] = SEP
        tokens[rows, 2 + length:2 + length + answer] = alphabet + y
        tokens[rows, 2 + length + answer] = EOS
        # position t predicts token t + 1: the answer's tokens and EOS follow positions 1 + length ... 1 + length + K
        targets[rows, 1 + length:2 + length + answer] = True
    return Problems(tokens, targets)


def _sample_side(skill: int, length: int, count: int, generator: torch.Generator, world_seed: int,
                 heldout: bool) -> torch.Tensor:
    """Uniform inputs of one length, rejection-sampled to the wanted side of the split."""
    kept: list[torch.Tensor] = []
    found = 0
    while found < count:
        draw = torch.randint(0, ALPHABET, (2 * count * (HELDOUT_SHARE if heldout else 1) + 16, length),
                             generator=generator)
        draw = draw[_reserved(skill, draw, world_seed) == heldout]
        kept.append(draw)
        found += draw.shape[0]
    return torch.cat(kept)[:count]


def mixture(skills: list[int], count: int, generator: torch.Generator, world_seed: int) -> Problems:
    """Training problems from several skills in equal shares, shuffled."""
    share = [count // len(skills) + (1 if i < count % len(skills) else 0) for i in range(len(skills))]
    parts = [problems(s, n, generator, world_seed, heldout=False) for s, n in zip(skills, share) if n]
    order = torch.randperm(count, generator=generator)
    return Problems(torch.cat([p.tokens for p in parts])[order], torch.cat([p.targets for p in parts])[order])
