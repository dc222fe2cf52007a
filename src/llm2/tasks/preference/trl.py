"""TRL's ``DPOTrainer``, training with an llm2 preference objective in place of TRL's built-in ``loss_type``.

    from trl import DPOConfig
    from llm2.integrations.trl import ObjectiveDPOTrainer

    trainer = ObjectiveDPOTrainer(objective="discopop",   # a catalog name, "FILE.py:NAME", an Objective,
                                  model=model,            # or any function of the preference contract
                                  ref_model=ref_model,    # or peft_config=..., or precompute_ref_log_probs=True
                                  args=DPOConfig(output_dir="out", beta=0.05),
                                  train_dataset=pairs, processing_class=tokenizer)
    trainer.train()

The objective receives what TRL computes: summed completion log-probabilities of policy and reference ([batch]
each, the batch's chosen and rejected halves) and ``DPOConfig.beta``; the training loss is the mean of the per-pair
losses it returns (plus a MoE router loss where TRL adds one). Everything else is TRL's own: the forward passes,
the reference (separate model, disabled PEFT adapter, or precomputed log-probs), ``ld_alpha`` weighting, the logged
metrics (rewards/*, logps/*, logits/*, entropy ...) and gradient accumulation.

How: TRL 1.16 computes its losses inline in ``DPOTrainer._compute_loss``, with no hook for a custom loss. This
trainer empties TRL's list of loss types, so TRL's loss is 0 (or its MoE auxiliary loss) while its metrics are still
logged; records, with a forward hook, the per-token log-probabilities of the policy and reference forward passes
TRL makes; sums them per sequence as TRL does; and adds the objective's mean loss in ``compute_loss``. TRL's
``loss_type``/``loss_weights``/``f_divergence_type``/``use_weighting`` shape TRL's own loss and are refused.
Unlike TRL's ``ipo``, nothing is length-normalised: the objective always gets summed log-probs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from llm2.errors import first_line

try:
    from trl import DPOConfig, DPOTrainer
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"llm2.integrations.trl needs TRL (pip install 'llm2[hf]'): {exc}") from None

PreferenceLoss = Callable[..., torch.Tensor]
CONTRACT_SIGNATURE = ("loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
                      "reference_rejected_logps, beta) -> per-pair losses [batch]")


def _catalog() -> Mapping[str, PreferenceLoss]:
    """The one place that knows where llm2 keeps its known objectives (name -> Objective)."""
    from llm2.tasks.preference.catalog import OBJECTIVES

    return OBJECTIVES


def catalog_names() -> list[str]:
    """The names ``objective=`` accepts (besides ``FILE.py:NAME`` and callables)."""
    return list(_catalog())


def _named_objective(spec: str) -> PreferenceLoss:
    objectives = _catalog()
    if spec in objectives:
        return objectives[spec]
    if ".py:" in spec:
        return _function_from_file(spec)
    raise ValueError(f"unknown objective {spec!r}; known: {', '.join(objectives)}; or give FILE.py:NAME")


def _function_from_file(spec: str) -> PreferenceLoss:
    """``FILE.py:NAME``: the function NAME of a module such as ``llm2 export`` writes, imported like any module.

    The file is imported, so first it must pass the verifier ``llm2 export`` applies: nothing runs at import or
    definition time (only imports, constants and plain functions), and the functions use only the preference
    task's vocabulary. A file that fails it is refused, never imported.
    """
    from llm2.sandbox.static_checks import verify_module
    from llm2.task_api.registry import import_user_file
    from llm2.tasks.preference.contract import PREFERENCE_CONTRACT

    path_text, _, name = spec.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise ValueError(f"objective file not found: {path_text}")
    try:
        problems = verify_module(path.read_text(encoding="utf-8"), PREFERENCE_CONTRACT.vocabulary)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path_text}: {first_line(exc)}") from None
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValueError(f"{path_text} is refused, not imported: {problems[0]}{more}")
    try:
        module = import_user_file(path, "llm2_objectives")
    except Exception as exc:  # noqa: BLE001 - any failure of the user's file becomes one readable line
        raise ValueError(f"importing {path_text} failed: {type(exc).__name__}: {first_line(exc)}") from None
    function = getattr(module, name, None)
    if not callable(function):
        defined = [k for k, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module.__name__]
        raise ValueError(f"{path_text} has no function {name!r}; it defines: {', '.join(defined) or 'none'}")
    return function


@dataclass(frozen=True)
class NamedObjective:
    name: str
    fn: PreferenceLoss


def resolve_objective(objective: str | PreferenceLoss) -> NamedObjective:
    """A catalog name, a ``FILE.py:NAME`` spec, an llm2 Objective, or a plain function of the preference contract."""
    if isinstance(objective, str):
        objective = _named_objective(objective)
    if not callable(objective):
        raise TypeError(f"objective must be a name or a function {CONTRACT_SIGNATURE}, "
                        f"got {type(objective).__name__}")
    name = getattr(objective, "name", None) or getattr(objective, "__name__", None) or repr(objective)
    return NamedObjective(str(name), objective)


def check_objective(objective: NamedObjective, beta: float, batch_size: int) -> None:
    """Call the objective once on random log-probs; raise a one-line TypeError/ValueError if it breaks the contract.

    Checked: it accepts the five arguments, returns a float tensor of shape [batch_size], finite, and differentiable
    with respect to the policy log-probabilities (else training would fail or silently learn nothing).
    """
    label = f"objective {objective.name!r}"
    arguments = _random_arguments(batch_size)
    try:
        inspect.signature(objective.fn).bind(*arguments, beta)
    except TypeError as exc:
        raise TypeError(f"{label} must accept {CONTRACT_SIGNATURE}: {exc}") from None
    except ValueError:
        pass  # no introspectable signature (some builtins): the call below decides
    try:
        losses = objective.fn(*arguments, beta)
    except Exception as exc:  # noqa: BLE001 - any failure of user code becomes one readable line
        raise ValueError(f"{label} failed on a test batch: {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(losses, torch.Tensor):
        raise TypeError(f"{label} must return a torch.Tensor of per-pair losses, got {type(losses).__name__}")
    if tuple(losses.shape) != (batch_size,):
        raise ValueError(f"{label} must return per-pair losses of shape [{batch_size}] for a batch of {batch_size}"
                         f" pairs, got shape {list(losses.shape)}")
    if not losses.is_floating_point():
        raise ValueError(f"{label} must return floating-point losses, got {losses.dtype}")
    if not torch.isfinite(losses).all():
        raise ValueError(f"{label} returned non-finite losses on a test batch: {losses.detach().tolist()}")
    policy = arguments[:2]
    gradients = (torch.autograd.grad(losses.sum(), policy, allow_unused=True)
                 if losses.requires_grad else (None, None))
    if all(g is None for g in gradients):
        raise ValueError(f"{label} is not differentiable with respect to the policy log-probabilities")
    if any(g is not None and not torch.isfinite(g).all() for g in gradients):
        raise ValueError(f"{label} has non-finite gradients on a test batch")


def _random_arguments(batch_size: int) -> tuple[torch.Tensor, ...]:
    """Plausible summed log-probs in [-21, -1]; a private generator leaves training's random stream untouched."""
    generator = torch.Generator().manual_seed(0)
    logps = [-(1.0 + 20.0 * torch.rand(batch_size, generator=generator)) for _ in range(4)]
    return logps[0].requires_grad_(), logps[1].requires_grad_(), logps[2], logps[3]


def check_config(args: Any) -> None:
    """Reject DPOConfig settings that choose or reshape TRL's own loss: the objective replaces that loss."""
    if list(args.loss_type) != ["sigmoid"]:
        raise ValueError(f"DPOConfig.loss_type={args.loss_type} conflicts with the objective, which replaces TRL's "
                         "loss; leave loss_type at its default")
    if args.loss_weights not in (None, [1.0]):
        raise ValueError(f"DPOConfig.loss_weights={args.loss_weights} conflicts with the objective, which replaces "
                         "TRL's loss; leave loss_weights unset")
    if args.f_divergence_type != "reverse_kl":
        raise ValueError(f"DPOConfig.f_divergence_type={args.f_divergence_type!r} is not supported with an objective:"
                         " the objective receives plain log-probabilities; use 'reverse_kl'")
    if args.use_weighting:
        raise ValueError("DPOConfig.use_weighting=True (WPO) is not supported with an objective; set it to False")


def sequence_logps(token_logps: torch.Tensor, completion_mask: torch.Tensor, ld_alpha: float | None) -> torch.Tensor:
    """Per-sequence log-probs from TRL's per-token ones (already 0 outside the completion), as TRL forms them.

    Sums over tokens; with LD-DPO's ``ld_alpha``, the tokens past the shorter completion of each pair count
    ``ld_alpha`` times. ``token_logps`` is [2·batch, length-1], the chosen half then the rejected half.
    """
    if ld_alpha is None:
        return token_logps.sum(dim=1)
    shifted_mask = completion_mask[:, 1:]
    position = shifted_mask.cumsum(dim=1)  # 1-based index of each token within its completion
    chosen_lengths, rejected_lengths = shifted_mask.sum(dim=1).chunk(2)
    shared = torch.minimum(chosen_lengths, rejected_lengths).repeat(2).unsqueeze(1)
    weights = torch.where(position <= shared, 1.0, ld_alpha).to(token_logps.dtype)
    return (token_logps * weights).sum(dim=1)


class _LogProbRecorder:
    """Records the per-token log-probs of every fused-head forward pass of the given modules, in call order."""

    def __init__(self, modules: list[torch.nn.Module]):
        self.modules = list({id(m): m for m in modules}.values())
        self.log_probs: list[torch.Tensor] = []
        self._handles: list[Any] = []

    def _record(self, module, inputs, output) -> None:
        log_probs = getattr(output, "log_probs", None)
        if isinstance(log_probs, torch.Tensor):  # plain forwards (no fused LM head) return logits: ignored
            self.log_probs.append(log_probs)

    def __enter__(self) -> "_LogProbRecorder":
        self._handles = [m.register_forward_hook(self._record) for m in self.modules]
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()


class ObjectiveDPOTrainer(DPOTrainer):
    """``trl.DPOTrainer`` whose loss is an llm2 preference objective; all other arguments go to DPOTrainer.

    ``objective``: a catalog name (``"discopop"``), ``"FILE.py:NAME"`` (as ``llm2 export`` writes), an llm2
    ``Objective``, or any function ``loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
    reference_rejected_logps, beta) -> [batch]`` of summed completion log-probs. It is checked once on a random
    batch before anything else is set up. ``DPOConfig.loss_type``/``loss_weights``/``f_divergence_type``/
    ``use_weighting`` must stay at their defaults (the objective replaces TRL's loss).
    """

    _tag_names = ["trl", "dpo", "llm2"]

    def __init__(self, objective: str | PreferenceLoss, model: Any, ref_model: Any = None,
                 args: DPOConfig | None = None, **kwargs: Any):
        self.objective = resolve_objective(objective)
        if args is not None:
            check_config(args)
        # Without args TRL uses DPOConfig's defaults; the dataclass exposes them as class attributes.
        settings = args if args is not None else DPOConfig
        check_objective(self.objective, float(settings.beta), int(settings.per_device_train_batch_size))
        super().__init__(model=model, ref_model=ref_model, args=args, **kwargs)
        # TRL's loss loop then adds nothing; compute_loss adds the objective instead.
        self.loss_types, self.loss_weights = [], []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        modules = [self.accelerator.unwrap_model(model)]
        if self.ref_model is not None:
            modules.append(self.accelerator.unwrap_model(self.ref_model))
        with _LogProbRecorder(modules) as recorder:
            result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                          num_items_in_batch=num_items_in_batch)
        trl_loss, outputs = result if return_outputs else (result, None)
        losses = self._objective_losses(inputs, recorder.log_probs)
        loss = trl_loss + losses.mean()
        return (loss, outputs) if return_outputs else loss

    def _objective_losses(self, inputs: dict[str, torch.Tensor], recorded: list[torch.Tensor]) -> torch.Tensor:
        """Per-pair objective losses from the recorded forward passes: the policy's first, then the reference's."""
        expected = 1 if self.precompute_ref_logps else 2
        if len(recorded) != expected:
            raise RuntimeError(f"ObjectiveDPOTrainer saw {len(recorded)} log-prob forward passes instead of "
                               f"{expected}; this TRL version computes its DPO loss differently (tested: TRL 1.16)")
        completion_mask = inputs["completion_mask"]
        length = completion_mask.size(1) - 1  # prompt-learning PEFT prepends virtual tokens: keep the real ones

        def logps(token_logps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return sequence_logps(token_logps[:, -length:], completion_mask, self.ld_alpha).chunk(2)

        policy_chosen, policy_rejected = logps(recorded[0])
        if self.precompute_ref_logps:
            reference_chosen, reference_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            reference_chosen, reference_rejected = logps(recorded[1])
        losses = self.objective.fn(policy_chosen, policy_rejected,
                                   reference_chosen.detach(), reference_rejected.detach(), self.beta)
        if not isinstance(losses, torch.Tensor) or losses.shape != policy_chosen.shape:
            shape = list(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
            raise ValueError(f"objective {self.objective.name!r} returned {shape} for a batch of "
                             f"{policy_chosen.shape[0]} pairs; it must return per-pair losses [batch]")
        return losses
