"""``preference-synthetic``: the synthetic preference world as an llm2 task (DESIGN.md §4)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from llm2.tasks.base import CandidateError, Contract, EvalSetting, LossFn, Metrics, TrainOutput
from llm2.tasks.preference_synthetic.config import TrainConfig, WorldConfig
from llm2.tasks.preference_synthetic.score import score_weights
from llm2.tasks.preference_synthetic.train import train_policy
from llm2.tasks.preference_synthetic.world import World, load_world

BASELINE_NAMES = ("dpo", "hinge", "ipo", "kto_pair")
HELDOUT_BETAS = (0.01, 0.025, 0.1, 0.5)
HELDOUT_WORLD_SEEDS = (1, 2)
HELDOUT_LABEL_NOISE = (0.1, 0.3)
COLLAPSE_MARGIN = 0.15  # a probe this far below the reference's reward has collapsed


class PreferenceSyntheticTask:
    name = "preference-synthetic"
    kind = "preference optimization"
    description = (
        "The task: offline preference optimization, as in RLHF from human preference pairs. A small language model\n"
        "(the policy) starts from a supervised reference model and is trained on pairs of completions for the same\n"
        "prompt, one preferred (chosen) over the other (rejected) by noisy human-like labels: about one label in\n"
        "five is wrong. Your loss is applied to each pair for one epoch."
    )
    fitness_description = (
        "the mean reward of completions sampled from the trained policy on held-out prompts, scored by a hidden\n"
        "gold reward model (0 to 1; higher is better). Moving far from the reference (high KL) is not penalised in\n"
        "the fitness, but it is reported"
    )
    default_setting = EvalSetting(beta=0.05)
    probe_fraction = 0.25

    def __init__(self, world_config: WorldConfig | None = None, train_config: TrainConfig | None = None):
        self.world_config = world_config or WorldConfig()
        self.train_config = train_config or TrainConfig()
        self._reference_metrics: dict[int, Metrics] = {}

    @property
    def contract(self) -> Contract:
        from llm2.objectives.contract import PREFERENCE_CONTRACT

        return PREFERENCE_CONTRACT

    @property
    def baselines(self) -> dict[str, str]:
        from llm2.objectives import OBJECTIVES

        return {name: OBJECTIVES[name].code for name in BASELINE_NAMES}

    def world(self, setting: EvalSetting) -> World:
        return load_world(self.world_config, setting.world_seed)

    def prepare(self, setting: EvalSetting) -> None:
        self.world(setting).pairs(setting.label_noise)
        # torch.optim imports torch._dynamo on its first use (~6 s here): pay that here, where warm workers
        # prepare before they fork a child per candidate, and not inside the first candidate's training.
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])

    def check_contract(self, fn: LossFn) -> None:
        check_preference_contract(fn)

    def train(self, fn: LossFn, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        world = self.world(setting)
        return train_policy(fn, world, world.pairs(setting.label_noise), setting, self.train_config,
                            self.probe_fraction, checkpoint)

    def score(self, output: TrainOutput, setting: EvalSetting, quick: bool = False) -> Metrics:
        reward, kl, reward_std = score_weights(self.world(setting), output.weights, self.train_config, quick)
        loss_final = output.loss_trace[-1] if output.loss_trace else math.nan
        return Metrics(fitness=reward, kl=kl, extra={"reward_std": reward_std, "loss_final": loss_final})

    def reference_metrics(self, setting: EvalSetting) -> Metrics:
        if setting.world_seed not in self._reference_metrics:
            world = self.world(setting)
            reward, kl, reward_std = score_weights(world, world.reference_weights, self.train_config)
            self._reference_metrics[setting.world_seed] = Metrics(fitness=reward, kl=kl,
                                                                  extra={"reward_std": reward_std})
        return self._reference_metrics[setting.world_seed]

    def collapse_reason(self, probe_metrics: Metrics, setting: EvalSetting) -> str | None:
        if not math.isfinite(probe_metrics.fitness):
            return "the probe's reward is not a number"
        reference = self.reference_metrics(setting).fitness
        if probe_metrics.fitness < reference - COLLAPSE_MARGIN:
            return (f"collapsed: the probe's reward {probe_metrics.fitness:.3f} is more than {COLLAPSE_MARGIN}"
                    f" below the reference's {reference:.3f}")
        return None

    def heldout_settings(self, base: EvalSetting) -> list[EvalSetting]:
        """Settings that differ from ``base`` in one knob each: β, then world seed, then label noise."""
        noise = self.world_config.label_noise if base.label_noise is None else base.label_noise
        return ([base.replace(beta=b) for b in HELDOUT_BETAS if b != base.beta]
                + [base.replace(world_seed=s) for s in HELDOUT_WORLD_SEEDS if s != base.world_seed]
                + [base.replace(label_noise=n) for n in HELDOUT_LABEL_NOISE if n != noise])


# --- the contract's unit checks ----------------------------------------------------------------------------------

def _contract_inputs(batch: int, generator: torch.Generator) -> tuple:
    """Plausible inputs: summed log-probs of 14-token completions, the policy a little off the reference."""
    reference = -30.0 + 5.0 * torch.randn(2, batch, generator=generator)
    policy = (reference + 0.5 * torch.randn(2, batch, generator=generator)).requires_grad_(True)
    return policy, reference


def check_preference_contract(fn: LossFn, beta: float = 0.05) -> None:
    """Call ``fn`` on random batches of 8 and 1; raise CandidateError(stage='contract') saying what is wrong."""
    generator = torch.Generator().manual_seed(0)
    for batch in (8, 1):
        policy, reference = _contract_inputs(batch, generator)
        where = f"on a batch of {batch}"
        try:
            losses = fn(policy[0], policy[1], reference[0], reference[1], beta)
        except Exception as exc:  # noqa: BLE001 - any failure of candidate code is the candidate's
            raise CandidateError(f"the loss raised {type(exc).__name__}: {exc} ({where})") from None
        if not isinstance(losses, torch.Tensor):
            raise CandidateError(f"the loss returned {type(losses).__name__}, not a torch.Tensor ({where})")
        if not losses.is_floating_point():
            raise CandidateError(f"the loss returned a tensor of {losses.dtype}, not a float tensor ({where})")
        if tuple(losses.shape) != (batch,):
            raise CandidateError(f"the loss returned shape {tuple(losses.shape)} but the contract needs ({batch},)"
                                 f" ({where}): one loss per pair, not reduced")
        if not torch.isfinite(losses).all():
            raise CandidateError(f"the loss returned non-finite values {losses.detach().tolist()} ({where})")
        if not losses.requires_grad:
            raise CandidateError(f"the loss has no gradient with respect to the policy log-probs ({where});"
                                 " do not detach them or convert them to numbers")
        try:
            losses.sum().backward()
        except Exception as exc:  # noqa: BLE001
            raise CandidateError(f"backpropagating the loss failed: {type(exc).__name__}: {exc} ({where})") from None
        if policy.grad is None:
            raise CandidateError(f"no gradient reaches the policy log-probs ({where})")
        if not torch.isfinite(policy.grad).all():
            raise CandidateError(f"the gradient with respect to the policy log-probs is not finite ({where})")
