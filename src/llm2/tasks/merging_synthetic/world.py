"""Building the synthetic merging world once per world seed: a seed model, experts fine-tuned from it, and the
held-out problems that score a merge; each cached on disk in its own file.

Why these choices (measured on three world seeds; bench/merging.py reports the resulting table):

- The seed is pre-trained on an equal mixture of all eight skills in one shared format, for just long enough that
  it has the circuits every skill needs (attending by position, reading the skill token) but solves only about
  half of the held-out problems exactly (0.52 on the default three skills, in every world). Experts then refine
  what the seed half knows instead of building new circuits: with a weaker seed (300 steps) the experts'
  fine-tunings were large, and no merge beat the best single expert.
- Experts are fine-tuned briefly with a small learning rate (200 steps of Adam at 1.5e-4) on their own skill
  only: they stay in the seed's basin, their task vectors are small (2.3 % of the weights' norm) and nearly
  orthogonal (mean pairwise cosine 0.03), and each keeps most of the seed's other skills.
- Each skill has its own alphabet (llm2.tasks.merging_synthetic.skills), so the rows of the embedding and output
  matrices an expert changes are mostly its own.
- Width 64 rather than 32: at width 32 the reverse expert re-wired attention that every other skill used, and its
  task vector destroyed the other skills in a merge; the wider model has room for both.

With these, merging the default three experts by task arithmetic (0.71 ± 0.02 over worlds) or TIES (0.68 ± 0.01)
beats the seed (0.52) and every single expert (0.55-0.63) on the mean over their skills, while summing the task
vectors unscaled (λ = 1) loses much of the gain (0.62 on validation problems, against 0.72 at λ = 0.6): the
interference merge methods are made for is there, in a model built in under a minute of CPU.

Which held-out problems are scored is drawn with a seed that mixes the world seed with the world secret
(``llm2.task_api.world_secret``), and that file is named by the secret's fingerprint. The split itself (which inputs
are reserved) stays with the world seed: it decides what the seed model and the experts were trained on, which a
candidate is handed anyway, and a skill's answers are a public function of its input, so the split hides nothing a
merge could use; the secret would only re-roll the models and the findings above (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from llm2 import progress
from llm2.task_api import cache, world_secret
from llm2.tasks.merging_synthetic import skills as skillset
from llm2.tasks.merging_synthetic.model import TinyLM, answer_loss
from llm2.task_api.threads import single_thread

VERSION = "v1"  # bump when a recipe changes: cached worlds are then rebuilt
BATCH = 64


@dataclass(frozen=True)
class Recipe:
    """How a world is built and scored."""

    width: int
    seed_steps: int
    seed_lr: float
    seed_warmup: int
    expert_steps: int
    expert_lr: float
    heldout_problems: int  # per skill; the merged skills are scored on all of them
    quick_problems: int  # the other skills (a side measure), and the probe's share


RECIPES = {
    "default": Recipe(width=64, seed_steps=500, seed_lr=3e-3, seed_warmup=50, expert_steps=200, expert_lr=1.5e-4,
                      heldout_problems=1024, quick_problems=256),
    # a world built in seconds, for smoke tests and demos; its merges do not show the default world's findings
    "small": Recipe(width=32, seed_steps=300, seed_lr=3e-3, seed_warmup=20, expert_steps=60, expert_lr=3e-4,
                    heldout_problems=256, quick_problems=64),
}


def world_dir(world_seed: int, recipe: str = "default") -> Path:
    return cache.cache_dir() / "merging-synthetic" / f"{VERSION}-{recipe}-world{world_seed}"


def seed_file(world_seed: int, recipe: str = "default") -> Path:
    return world_dir(world_seed, recipe) / "seed.pt"


def expert_file(world_seed: int, skill: str, expert_seed: int, recipe: str = "default") -> Path:
    return world_dir(world_seed, recipe) / f"expert-{skill}-ft{expert_seed}.pt"


def problems_file(world_seed: int, recipe: str = "default") -> Path:
    """Scoring data: the held-out problems of every skill (never loaded on the training side), drawn per world
    secret (trusted processes only: naming it reads the secret)."""
    return world_dir(world_seed, recipe) / f"heldout-problems-s{world_secret.fingerprint()}.pt"


def _fit(model: TinyLM, problems: skillset.Problems, lr: float, warmup: int, what: str) -> None:
    """Adam over consecutive batches of ``problems`` (drawn in advance: one vectorised draw is much cheaper)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    steps = len(problems) // BATCH
    with progress.step(f"merging world: {what} (steps)", steps) as advance:
        for step in range(steps):
            if warmup:
                for group in optimizer.param_groups:
                    group["lr"] = lr * min(1.0, (step + 1) / warmup)
            batch = slice(step * BATCH, (step + 1) * BATCH)
            loss = answer_loss(model, problems.tokens[batch], problems.targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            advance(step + 1)


def _state(model: TinyLM) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def build_seed(world_seed: int, recipe: Recipe = RECIPES["default"]) -> dict[str, torch.Tensor]:
    """Pre-train the seed model on the mixture of all skills."""
    with single_thread():
        torch.manual_seed(world_seed)
        model = TinyLM(width=recipe.width)
        generator = torch.Generator().manual_seed(world_seed)
        data = skillset.mixture(list(range(len(skillset.SKILLS))), recipe.seed_steps * BATCH, generator, world_seed)
        _fit(model, data, recipe.seed_lr, recipe.seed_warmup, f"pre-training the seed model of world {world_seed}")
        return _state(model)


def build_expert(seed_state: dict[str, torch.Tensor], world_seed: int, skill: str, expert_seed: int,
                 recipe: Recipe = RECIPES["default"]) -> dict[str, torch.Tensor]:
    """Fine-tune a copy of the seed on one skill with the fixed expert recipe."""
    with single_thread():
        model = TinyLM(width=recipe.width)
        model.load_state_dict(seed_state)  # copies into the model's own tensors: seed_state stays as it is
        index = skillset.skill_index(skill)
        generator = torch.Generator().manual_seed(1_000_003 * (expert_seed + 1) + 7_919 * world_seed + index)
        data = skillset.problems(index, recipe.expert_steps * BATCH, generator, world_seed, heldout=False)
        _fit(model, data, recipe.expert_lr, 0, f"fine-tuning the {skill} expert")
        return _state(model)


def build_heldout(world_seed: int, recipe: Recipe = RECIPES["default"]) -> dict[str, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(world_secret.derive_seed("merging-synthetic", "heldout", world_seed))
    found = {}
    for index, skill in enumerate(skillset.SKILL_NAMES):
        problems = skillset.problems(index, recipe.heldout_problems, generator, world_seed, heldout=True)
        found[skill] = {"tokens": problems.tokens, "targets": problems.targets}
    return found


def prepare_world(world_seed: int, skills: tuple[str, ...], expert_seed: int, recipe: str = "default") -> None:
    """Build (once) the seed, the named experts and the held-out problems of ``world_seed``."""
    how = RECIPES[recipe]
    cache.build_once(problems_file(world_seed, recipe), lambda: build_heldout(world_seed, how))
    cache.build_once(seed_file(world_seed, recipe), lambda: build_seed(world_seed, how))
    seed_state: dict[str, torch.Tensor] | None = None
    for skill in skills:
        path = expert_file(world_seed, skill, expert_seed, recipe)
        if path.exists():
            continue
        if seed_state is None:
            seed_state = cache.load(seed_file(world_seed, recipe))
        cache.build_once(path, lambda skill=skill, state=seed_state: build_expert(state, world_seed, skill,
                                                                                   expert_seed, how))


@dataclass(frozen=True)
class MergeInputs:
    """The training side of a setting: the seed's and the experts' weights, nothing used for scoring."""

    skills: tuple[str, ...]
    base: dict[str, torch.Tensor]
    experts: tuple[dict[str, torch.Tensor], ...]


def load_inputs(world_seed: int, skills: tuple[str, ...], expert_seed: int, recipe: str = "default") -> MergeInputs:
    base = load_seed(world_seed, recipe)
    experts = tuple(cache.load(expert_file(world_seed, skill, expert_seed, recipe)) for skill in skills)
    return MergeInputs(tuple(skills), base, experts)


def load_heldout(world_seed: int, recipe: str = "default") -> dict[str, skillset.Problems]:
    stored = cache.load(problems_file(world_seed, recipe))
    return {skill: skillset.Problems(p["tokens"], p["targets"]) for skill, p in stored.items()}


def load_seed(world_seed: int, recipe: str = "default") -> dict[str, torch.Tensor]:
    return cache.load(seed_file(world_seed, recipe))
