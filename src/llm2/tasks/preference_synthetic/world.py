"""One synthetic preference world: hidden generating process, reference policy, gold reward, labelled pairs.

Everything follows from ``(WorldConfig, seed)`` and the world secret (``llm2.task_api.world_secret``): the hidden
process, the gold reward, the held-out prompts and every sampling seed are drawn from a seed that mixes the world
seed with the secret, so a candidate that knows the code and the world seed still cannot rebuild them (and with
them the reference and the pairs, which a candidate is given anyway). The whole ``World`` (gold reward, held-out
prompts, sampling seed: what only scoring may know) is built once by the trusted main process and cached, under
the secret's fingerprint; from it, per label-noise level,
a ``TrainingWorld`` file holds only what training needs (the reference's weights and the labelled pairs). Warm
workers, and the candidates' processes they fork, load only that file. Both are kept in memory per process.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from llm2 import progress
from llm2.task_api import cache, world_secret
from llm2.tasks.preference_synthetic.config import WorldConfig
from llm2.tasks.preference_synthetic.model import TinyGPT, completion_logps, sample
from llm2.task_api.threads import single_thread


@dataclass(frozen=True)
class PreferencePairs:
    chosen: torch.Tensor  # [pairs, sequence] token ids, prompt then completion
    rejected: torch.Tensor
    reference_chosen_logps: torch.Tensor  # [pairs], summed over completion tokens
    reference_rejected_logps: torch.Tensor
    disagreement: float  # share of labels that disagree with the gold reward

    def __len__(self) -> int:
        return self.chosen.shape[0]


@dataclass
class World:
    config: WorldConfig
    seed: int
    reference_weights: dict[str, torch.Tensor]
    transitions: torch.Tensor  # [topics, vocab, vocab] the hidden process: each topic's Markov chain
    token_rewards: torch.Tensor  # [vocab] hidden "sentiment" of each token
    reward_mean: float
    reward_std: float
    reward_offset: float
    completions_a: torch.Tensor  # [pairs, sequence]: two reference samples per prompt, unlabelled
    completions_b: torch.Tensor
    reference_logps_a: torch.Tensor  # [pairs]
    reference_logps_b: torch.Tensor
    heldout_prompts: torch.Tensor  # [heldout, prompt]
    sampling_seed: int  # the scorer's: the same weights always get the same score
    _pairs: dict[float, PreferencePairs] = field(default_factory=dict, repr=False)
    _frozen_reference: TinyGPT | None = field(default=None, repr=False)

    def gold_reward(self, sequences: torch.Tensor) -> torch.Tensor:
        """r*(x, y) in (0, 1): the standardised sum of token rewards over the completion, through a sigmoid."""
        total = self.token_rewards[sequences[:, self.config.prompt_length:]].sum(dim=1)
        return torch.sigmoid((total - self.reward_mean) / self.reward_std + self.reward_offset)

    def transition_probabilities(self, sequences: torch.Tensor) -> torch.Tensor:
        """[batch, completion]: the process's probability of each completion token given the token before it."""
        topic = (sequences[:, 0] % self.config.topics).unsqueeze(1)
        start = self.config.prompt_length
        return self.transitions[topic, sequences[:, start - 1:-1], sequences[:, start:]]

    def reference_model(self) -> TinyGPT:
        """A fresh copy of the reference."""
        return _model(self.config, self.reference_weights)

    def frozen_reference(self) -> TinyGPT:
        """The reference in eval mode, shared: for KL estimates only, never trained."""
        if self._frozen_reference is None:
            self._frozen_reference = self.reference_model().eval().requires_grad_(False)
        return self._frozen_reference

    def pairs(self, label_noise: float) -> PreferencePairs:
        """The pairs labelled by Bradley-Terry so that ``label_noise`` of the labels disagree with the gold reward."""
        noise = float(label_noise)
        if noise not in self._pairs:
            self._pairs[noise] = label_pairs(self, noise)
        return self._pairs[noise]

    def to_state(self) -> dict:
        state = {name: getattr(self, name) for name in _TENSOR_FIELDS}
        state.update({f"reference.{k}": v for k, v in self.reference_weights.items()})
        state.update(seed=self.seed, reward_mean=self.reward_mean, reward_std=self.reward_std,
                     reward_offset=self.reward_offset, sampling_seed=self.sampling_seed)
        return state

    @classmethod
    def from_state(cls, config: WorldConfig, state: dict) -> "World":
        return cls(config, int(state["seed"]), _reference_weights(state), reward_mean=float(state["reward_mean"]),
                   reward_std=float(state["reward_std"]), reward_offset=float(state["reward_offset"]),
                   sampling_seed=int(state["sampling_seed"]), **{name: state[name] for name in _TENSOR_FIELDS})


@dataclass
class TrainingWorld:
    """What a candidate trains on, and nothing else: the reference's weights and the labelled pairs."""

    config: WorldConfig
    seed: int
    label_noise: float
    reference_weights: dict[str, torch.Tensor]
    pairs: PreferencePairs

    def reference_model(self, dropout: float | None = None) -> TinyGPT:
        """A fresh copy of the reference, to be trained (with ``dropout``, default the reference's own)."""
        return _model(self.config, self.reference_weights, dropout)


def _model(config: WorldConfig, weights: dict[str, torch.Tensor], dropout: float | None = None) -> TinyGPT:
    model = TinyGPT(config if dropout is None else dataclasses.replace(config, dropout=dropout))
    model.load_state_dict(weights)
    return model


def _reference_weights(state: dict) -> dict[str, torch.Tensor]:
    return {k.removeprefix("reference."): v for k, v in state.items() if k.startswith("reference.")}


_TENSOR_FIELDS = ("transitions", "token_rewards", "completions_a", "completions_b", "reference_logps_a",
                  "reference_logps_b", "heldout_prompts")


# --- the hidden generating process -------------------------------------------------------------------------------

def sample_process(transitions: torch.Tensor, count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Sequences [count, length]: the first token uniform, it picks the topic whose Markov chain draws the rest."""
    topics, vocab, _ = transitions.shape
    tokens = torch.randint(vocab, (count, 1), generator=generator)
    chain = transitions[tokens[:, 0] % topics]  # [count, vocab, vocab]
    for _ in range(length - 1):
        rows = chain[torch.arange(count), tokens[:, -1]]
        tokens = torch.cat([tokens, torch.multinomial(rows, 1, generator=generator)], dim=1)
    return tokens


def train_reference(config: WorldConfig, sequences: torch.Tensor, generator: torch.Generator) -> TinyGPT:
    """Maximum likelihood on samples of the process: the world's SFT policy."""
    model = TinyGPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.reference_lr, weight_decay=0.01)
    steps_per_epoch = len(sequences) // config.reference_batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.reference_lr, pct_start=0.1,
                                                   total_steps=steps_per_epoch * config.reference_epochs)
    model.train()
    total = steps_per_epoch * config.reference_epochs
    with progress.step("preference world: training the reference policy (steps)", total) as advance:
        for epoch in range(config.reference_epochs):
            order = torch.randperm(len(sequences), generator=generator)
            for step in range(steps_per_epoch):
                batch = sequences[order[step * config.reference_batch_size:(step + 1) * config.reference_batch_size]]
                logits = model(batch[:, :-1])
                loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), batch[:, 1:].reshape(-1))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                advance(epoch * steps_per_epoch + step + 1)
    return model.eval()


def _bisect(function, low: float, high: float, target: float, iterations: int = 60) -> float:
    """x in [low, high] with function(x) = target, for a function increasing in x."""
    for _ in range(iterations):
        middle = (low + high) / 2
        low, high = (middle, high) if function(middle) < target else (low, middle)
    return (low + high) / 2


def build_world(config: WorldConfig, seed: int) -> World:
    """Trusted processes only: every draw comes from the world seed mixed with the secret."""
    hidden = world_secret.derive_seed("preference-synthetic", "world", seed)
    rng = np.random.default_rng(hidden)
    generator = torch.Generator().manual_seed(hidden)
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(hidden)
        alpha = np.full(config.vocab_size, config.dirichlet_alpha)
        transitions = torch.tensor(rng.dirichlet(alpha, size=(config.topics, config.vocab_size)), dtype=torch.float32)
        reference = train_reference(
            config, sample_process(transitions, config.reference_sequences, config.sequence_length, generator),
            generator)

        with progress.step(f"preference world: sampling {config.pairs} pairs of completions from the reference"):
            prompts = sample_process(transitions, config.pairs + config.heldout_prompts, config.prompt_length,
                                     generator)
            pair_prompts, heldout = prompts[:config.pairs], prompts[config.pairs:]
            both = sample(reference, pair_prompts.repeat(2, 1), config.completion_length, generator)
            with torch.no_grad():
                logps = completion_logps(reference, both, config.prompt_length).sum(dim=1)

        token_rewards = torch.tensor(rng.standard_normal(config.vocab_size), dtype=torch.float32)
        totals = token_rewards[both[:, config.prompt_length:]].sum(dim=1)
        mean, std = totals.mean().item(), totals.std().item()
        standardised = (totals - mean) / std
        offset = _bisect(lambda b: torch.sigmoid(standardised + b).mean().item(), -10.0, 10.0,
                         config.reference_reward)
        sampling_seed = int(rng.integers(2**31))
    weights = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    return World(config, seed, weights, transitions, token_rewards, mean, std, offset,
                 both[:config.pairs], both[config.pairs:], logps[:config.pairs], logps[config.pairs:], heldout,
                 sampling_seed)


def label_pairs(world: World, noise: float) -> PreferencePairs:
    """Bradley-Terry labels p(a > b) = sigmoid((r_a - r_b) / T), T chosen so ``noise`` of them are expected wrong."""
    if not 0.0 <= noise < 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5), got {noise}")
    gap = world.gold_reward(world.completions_a) - world.gold_reward(world.completions_b)
    if noise == 0.0:
        a_wins = gap > 0
    else:
        # Expected disagreement mean(sigmoid(-|gap| / T)) grows with T; search T on a log scale.
        expected = lambda log_t: torch.sigmoid(-gap.abs() / math.exp(log_t)).mean().item()  # noqa: E731
        temperature = math.exp(_bisect(expected, -20.0, 10.0, noise))
        # secret too: knowing each label's random draw would tell a candidate how close its gap is
        generator = torch.Generator().manual_seed(
            world_secret.derive_seed("preference-synthetic", "labels", world.seed, f"{noise:.6g}"))
        a_wins = torch.rand(len(gap), generator=generator) < torch.sigmoid(gap / temperature)
    pick = a_wins.unsqueeze(1)
    disagreement = ((gap > 0) != a_wins)[gap != 0].float().mean().item()
    return PreferencePairs(
        chosen=torch.where(pick, world.completions_a, world.completions_b),
        rejected=torch.where(pick, world.completions_b, world.completions_a),
        reference_chosen_logps=torch.where(a_wins, world.reference_logps_a, world.reference_logps_b),
        reference_rejected_logps=torch.where(a_wins, world.reference_logps_b, world.reference_logps_a),
        disagreement=disagreement,
    )


# --- caching -----------------------------------------------------------------------------------------------------

# Keyed by the secret's fingerprint too: another secret is another world, in memory as on disk.
_WORLDS: dict[tuple[str, str, int], World] = {}
_TRAINING: dict[tuple[str, str, int, float], TrainingWorld] = {}


def world_path(config: WorldConfig, seed: int) -> Path:
    """Trusted processes only (it reads the secret to know its fingerprint)."""
    return cache.cache_dir() / f"preference-synthetic-{config.key()}-s{world_secret.fingerprint()}-world{seed}.pt"


def training_path(config: WorldConfig, seed: int, label_noise: float) -> Path:
    """Any process: named by the fingerprint a trusted ancestor published (never by reading the secret)."""
    return cache.cache_dir() / (f"preference-synthetic-{config.key()}-s{world_secret.published_fingerprint()}"
                                f"-world{seed}-train-noise{label_noise:g}.pt")


def load_world(config: WorldConfig, seed: int) -> World:
    """The whole world for ``(config, seed)`` — trusted processes only: from memory, else disk, else built."""
    key = (config.key(), world_secret.fingerprint(), seed)
    if key not in _WORLDS:
        path = world_path(config, seed)

        def build() -> dict:
            with progress.step(f"building preference world {seed} (once; cached in {path.parent})"):
                return build_world(config, seed).to_state()

        cache.build_once(path, build)
        _WORLDS[key] = World.from_state(config, cache.load(path))
    return _WORLDS[key]


def prepare_training(config: WorldConfig, seed: int, label_noise: float) -> None:
    """Write the training file of ``(config, seed, label_noise)`` from the whole world (trusted: labels need the
    gold reward)."""
    world_secret.fingerprint()  # publishes it, for the training files' names

    def build() -> dict:
        world = load_world(config, seed)
        pairs = world.pairs(label_noise)
        state = {f"reference.{k}": v for k, v in world.reference_weights.items()}
        state.update(seed=seed, label_noise=float(label_noise), disagreement=pairs.disagreement, chosen=pairs.chosen,
                     rejected=pairs.rejected, reference_chosen_logps=pairs.reference_chosen_logps,
                     reference_rejected_logps=pairs.reference_rejected_logps)
        return state

    cache.build_once(training_path(config, seed, label_noise), build)


def load_training(config: WorldConfig, seed: int, label_noise: float) -> TrainingWorld:
    """The training file only (``prepare_training`` wrote it): what warm workers and candidates may hold."""
    key = (config.key(), world_secret.published_fingerprint(), seed, float(label_noise))
    if key not in _TRAINING:
        path = training_path(config, seed, label_noise)
        if not path.exists():
            raise FileNotFoundError(f"no training data for world {seed} at label noise {label_noise:g}: "
                                    f"the task was not prepared ({path})")
        state = cache.load(path)
        pairs = PreferencePairs(state["chosen"], state["rejected"], state["reference_chosen_logps"],
                                state["reference_rejected_logps"], float(state["disagreement"]))
        _TRAINING[key] = TrainingWorld(config, seed, float(label_noise), _reference_weights(state), pairs)
    return _TRAINING[key]
