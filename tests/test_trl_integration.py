"""ObjectiveDPOTrainer against TRL's own DPOTrainer, on a tiny random Llama, a word-level tokenizer and local pairs.

Each comparison runs one real optimizer step of each trainer from the same weights and compares the training loss
and every parameter's gradient just before the optimizer step (gradient clipping off), plus TRL's logged metrics.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, TrainerCallback  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

from llm2.integrations.trl import (  # noqa: E402
    ObjectiveDPOTrainer,
    catalog_names,
    check_objective,
    resolve_objective,
)
from testkit import import_file  # noqa: E402

TOLERANCE = 1e-5
BETA = 0.1
PAIRS = [
    {"prompt": "the cat", "chosen": " sat on the mat", "rejected": " ran"},
    {"prompt": "a dog ran", "chosen": " in the park", "rejected": " on the hill all day"},
    {"prompt": "the bird", "chosen": " sang a song", "rejected": " swam"},
    {"prompt": "rain", "chosen": " falls on the hill", "rejected": " is warm"},
]
# Every completion is one word (+ the EOS TRL appends): two tokens, so per-token averages are sums / 2.
EQUAL_LENGTH_PAIRS = [
    {"prompt": "the cat", "chosen": " sat", "rejected": " ran"},
    {"prompt": "a dog", "chosen": " ran", "rejected": " swam"},
    {"prompt": "the bird", "chosen": " sang", "rejected": " fell"},
    {"prompt": "rain", "chosen": " falls", "rejected": " is"},
]
# DPOConfig defaults to bf16 autocast and gradient checkpointing, even on a CPU: exact float32 compares better.
FLOAT32 = {"bf16": False, "gradient_checkpointing": False}
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
           "logps/rejected", "logits/chosen", "logits/rejected", "entropy")

# Catalog objective -> (TRL loss_type, the DPOConfig settings that give TRL the catalog's constants).
TRL_EQUIVALENTS = {
    "dpo": ("sigmoid", {}),
    "hinge": ("hinge", {}),
    "robust": ("robust", {"label_smoothing": 0.1}),
    "exo_pair": ("exo_pair", {"label_smoothing": 1e-3}),
    "nca_pair": ("nca_pair", {}),
    "bco_pair": ("bco_pair", {}),
    "sppo_hard": ("sppo_hard", {}),
    "apo_zero": ("apo_zero", {}),
    "apo_down": ("apo_down", {}),
    "discopop": ("discopop", {"discopop_tau": 0.05}),
}


@dataclass(frozen=True)
class World:
    tokenizer: PreTrainedTokenizerFast
    config: LlamaConfig
    policy_state: dict
    reference_state: dict
    output_dir: Path

    def model(self, state: dict) -> LlamaForCausalLM:
        model = LlamaForCausalLM(self.config)
        model.load_state_dict(state)
        return model


@dataclass(frozen=True)
class Step:
    loss: float
    gradients: dict[str, torch.Tensor]
    log: dict[str, float]  # the first logged step: TRL's metrics
    trainer: DPOTrainer


class GradientSnapshot(TrainerCallback):
    """Copies the accumulated gradients right before each optimizer step."""

    def __init__(self):
        self.gradients: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.gradients = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    words = [text for pair in PAIRS + EQUAL_LENGTH_PAIRS for text in pair.values()]
    word_level = Tokenizer(models.WordLevel(unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level.train_from_iterator(words, trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    # initializer_range 0.3 (not 0.02) so the two random models disagree: rewards of ±0.5 at beta 0.1 put the
    # losses away from x = 0, where several of them would coincide.
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         initializer_range=0.3, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    torch.manual_seed(0)
    policy_state = LlamaForCausalLM(config).state_dict()
    torch.manual_seed(1)
    reference_state = LlamaForCausalLM(config).state_dict()
    # Speed on a shared 2-core machine: one thread is 2-3x faster for a model this small; and each train() starts
    # with gc.collect (accelerate's free_memory), which freezing the objects the imports made cuts by about 0.4 s.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    gc.freeze()
    yield World(tokenizer, config, policy_state, reference_state, tmp_path_factory.mktemp("trl"))
    gc.unfreeze()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trl_dpo(world) -> Step:
    """TRL's own sigmoid (DPO) step, the baseline several tests compare with."""
    return train(world, loss_type="sigmoid")


def make_trainer(world: World, trainer_class=DPOTrainer, pairs=PAIRS, with_reference: bool = True,
                 trainer_kwargs: dict | None = None, **settings) -> DPOTrainer:
    options = {"per_device_train_batch_size": len(pairs), "learning_rate": 1e-3, "beta": BETA, "max_steps": 1,
               **settings}
    args = DPOConfig(output_dir=str(world.output_dir), max_grad_norm=0.0, logging_steps=1, report_to="none",
                     save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0, **FLOAT32, **options)
    reference = world.model(world.reference_state) if with_reference else None
    return trainer_class(model=world.model(world.policy_state), ref_model=reference, args=args,
                         train_dataset=Dataset.from_list(pairs), processing_class=world.tokenizer,
                         **(trainer_kwargs or {}))


def train(world: World, trainer_class=DPOTrainer, trainer_kwargs: dict | None = None, **settings) -> Step:
    """Run ``max_steps`` optimizer steps (default: one step over all pairs); gradients are those of the last step."""
    snapshot = GradientSnapshot()
    trainer = make_trainer(world, trainer_class, trainer_kwargs={"callbacks": [snapshot], **(trainer_kwargs or {})},
                           **settings)
    result = trainer.train()
    return Step(result.training_loss, snapshot.gradients, trainer.state.log_history[0], trainer)


def max_difference(ours: Step, theirs: Step) -> float:
    """Largest absolute difference in loss and any gradient; the gradients must cover the same parameters."""
    assert ours.gradients.keys() == theirs.gradients.keys()
    assert any(g.abs().max() > 0 for g in theirs.gradients.values()), "a zero gradient proves nothing"
    gaps = [abs(ours.loss - theirs.loss)]
    gaps += [(ours.gradients[name] - theirs.gradients[name]).abs().max().item() for name in theirs.gradients]
    return max(gaps)


def objective_step(world: World, objective, **settings) -> Step:
    return train(world, ObjectiveDPOTrainer, trainer_kwargs={"objective": objective}, **settings)


@pytest.mark.parametrize("name", sorted(TRL_EQUIVALENTS))
def test_catalog_objective_matches_trl_loss_type(world, trl_dpo, name):
    loss_type, trl_settings = TRL_EQUIVALENTS[name]
    theirs = trl_dpo if name == "dpo" else train(world, loss_type=loss_type, **trl_settings)
    ours = objective_step(world, name)
    assert max_difference(ours, theirs) <= TOLERANCE
    for metric in METRICS:  # TRL's own metrics, still logged, identical
        assert ours.log[metric] == pytest.approx(theirs.log[metric], abs=TOLERANCE), metric


def test_logged_metrics_describe_the_rewards(world):
    step = objective_step(world, "discopop")
    for metric in METRICS + ("loss", "num_tokens", "mean_token_accuracy"):
        assert math.isfinite(step.log[metric]), metric
    assert step.log["rewards/margins"] == pytest.approx(
        step.log["rewards/chosen"] - step.log["rewards/rejected"], abs=1e-6)
    assert 0.0 <= step.log["rewards/accuracies"] <= 1.0
    assert step.log["rewards/margins"] != 0.0  # policy and reference differ, so the rewards are real


def test_evaluation_reports_the_objective_loss_and_trl_metrics(world):
    results = []
    for trainer_class, settings, trainer_kwargs in ((DPOTrainer, {"loss_type": "discopop"}, {}),
                                                    (ObjectiveDPOTrainer, {}, {"objective": "discopop"})):
        trainer = make_trainer(world, trainer_class, trainer_kwargs={"eval_dataset": Dataset.from_list(PAIRS),
                                                                     **trainer_kwargs},
                               per_device_eval_batch_size=len(PAIRS), **settings)
        results.append(trainer.evaluate())
    theirs, ours = results
    for metric in ("eval_loss",) + tuple(f"eval_{name}" for name in METRICS):
        assert ours[metric] == pytest.approx(theirs[metric], abs=TOLERANCE), metric
    dpo = make_trainer(world, ObjectiveDPOTrainer, trainer_kwargs={"objective": "dpo",
                                                                   "eval_dataset": Dataset.from_list(PAIRS)})
    assert abs(dpo.evaluate()["eval_loss"] - ours["eval_loss"]) > 1e-3  # the objective decides the eval loss


def test_ipo_equals_trl_on_per_token_averages(world):
    """TRL's ipo divides each summed log-ratio by its completion length; the catalog's ipo takes the sums.

    On completions of one common length L, TRL's ipo is the catalog's ipo applied to the log-probs divided by L.
    """
    catalog_ipo = resolve_objective("ipo").fn
    length = 2  # one word and EOS

    def ipo_on_averages(pc, pr, rc, rr, beta):
        return catalog_ipo(pc / length, pr / length, rc / length, rr / length, beta)

    theirs = train(world, pairs=EQUAL_LENGTH_PAIRS, loss_type="ipo")
    ours = objective_step(world, ipo_on_averages, pairs=EQUAL_LENGTH_PAIRS)
    assert max_difference(ours, theirs) <= TOLERANCE
    summed = objective_step(world, "ipo", pairs=EQUAL_LENGTH_PAIRS)
    assert abs(summed.loss - theirs.loss) > 1e-3  # the catalog's ipo on sums really is a different loss


def test_cdpo_equals_trl_aot_for_single_pair_batches(world):
    """TRL 1.16's sigmoid ignores label_smoothing; its aot loss sorts over the batch, the identity for one pair."""
    settings = {"per_device_train_batch_size": 1, "gradient_accumulation_steps": len(PAIRS)}
    theirs = train(world, loss_type="aot", label_smoothing=0.1, **settings)
    ours = objective_step(world, "cdpo", **settings)
    assert max_difference(ours, theirs) <= TOLERANCE


def test_ld_alpha_weighting_matches_trl(world, trl_dpo):
    theirs = train(world, loss_type="sigmoid", ld_alpha=0.5)
    ours = objective_step(world, "dpo", ld_alpha=0.5)
    assert max_difference(ours, theirs) <= TOLERANCE
    assert abs(trl_dpo.loss - ours.loss) > 1e-4  # the pairs differ in length, so the weighting matters


def test_precomputed_reference_log_probs_give_the_same_step(world, trl_dpo):
    precomputed = objective_step(world, "dpo", precompute_ref_log_probs=True)
    assert "ref_chosen_logps" in precomputed.trainer.train_dataset.column_names
    assert max_difference(precomputed, trl_dpo) <= TOLERANCE
    # Without a ref_model TRL precomputes with the untrained policy itself: the first step starts at x = 0.
    own_reference = objective_step(world, "dpo", precompute_ref_log_probs=True, with_reference=False)
    assert own_reference.log["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert own_reference.loss == pytest.approx(math.log(2.0), abs=1e-6)


def test_lora_adapter_matches_trl_and_trains_only_the_adapter(world):
    peft = pytest.importorskip("peft")

    def lora():
        return peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")

    theirs = train(world, with_reference=False, loss_type="sigmoid", trainer_kwargs={"peft_config": lora()})
    ours = train(world, ObjectiveDPOTrainer, with_reference=False,
                 trainer_kwargs={"objective": "dpo", "peft_config": lora()})
    assert ours.gradients and all("lora_" in name for name in ours.gradients)
    assert max_difference(ours, theirs) <= TOLERANCE
    # The fresh adapter is a no-op, so policy = reference (the adapter disabled): zero margin on the first step.
    assert ours.log["rewards/margins"] == pytest.approx(0.0, abs=1e-6)

    trained = train(world, ObjectiveDPOTrainer, with_reference=False, max_steps=6, learning_rate=0.05,
                    trainer_kwargs={"objective": "discopop", "peft_config": lora()})
    parameters = dict(trained.trainer.model.named_parameters())
    base = {name: p for name, p in parameters.items() if "lora_" not in name}
    assert not any(p.requires_grad for p in base.values())
    for name, value in world.policy_state.items():
        key = next(k for k in base if k.endswith(name) or k.endswith(name.replace(".weight", ".base_layer.weight")))
        assert torch.equal(base[key].detach(), value), f"base weight {name} changed"
    assert any(p.abs().max() > 0 for name, p in parameters.items() if "lora_B" in name)  # B starts at zero
    losses = [entry["loss"] for entry in trained.trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0]


def test_gradient_accumulation_matches_a_full_batch(world):
    two_pairs = PAIRS[:2]
    full = objective_step(world, "discopop", pairs=two_pairs)
    accumulated = objective_step(world, "discopop", pairs=two_pairs, per_device_train_batch_size=1,
                                 gradient_accumulation_steps=2)
    assert max_difference(accumulated, full) <= TOLERANCE


# Shaped like what `llm2 export` writes: a plain module of self-contained functions and an OBJECTIVES dict.
EXPORTED_MODULE = '''"""Preference objectives discovered by llm2 (a hand-made stand-in for an export)."""

import torch
import torch.nn.functional as F
import math

SOURCES = {"margin_softplus": "written for this test"}


def margin_softplus(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    """DPO written another way: softplus(-x) is -log sigmoid(x)."""
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return F.softplus(-beta * rho)


OBJECTIVES = {"margin_softplus": margin_softplus}
'''


def test_exported_module_function_plugs_in(world, trl_dpo, tmp_path):
    path = tmp_path / "best.py"
    path.write_text(EXPORTED_MODULE, encoding="utf-8")
    exported = import_file(path, "best")

    by_function = objective_step(world, exported.margin_softplus)
    assert max_difference(by_function, trl_dpo) <= TOLERANCE
    by_spec = objective_step(world, f"{path}:margin_softplus")
    assert max_difference(by_spec, by_function) <= TOLERANCE
    assert by_spec.trainer.objective.name == "margin_softplus"
    by_dict = objective_step(world, exported.OBJECTIVES["margin_softplus"])
    assert max_difference(by_dict, by_function) == 0.0
    with pytest.raises(ValueError, match="has no function 'nope'; it defines: margin_softplus"):
        resolve_objective(f"{path}:nope")


NO_TRL_COUNTERPART = sorted(set(catalog_names()) - set(TRL_EQUIVALENTS))


@pytest.mark.parametrize("name", NO_TRL_COUNTERPART)
def test_other_catalog_objectives_train(world, name):
    step = objective_step(world, name)
    assert math.isfinite(step.loss)
    assert any(g.abs().max() > 0 for g in step.gradients.values())


def test_every_catalog_objective_passes_the_contract_check():
    for name in catalog_names():
        for batch_size in (1, 8):
            check_objective(resolve_objective(name), BETA, batch_size)  # raises on a violation


def _build(world, objective, **settings):
    return make_trainer(world, ObjectiveDPOTrainer, trainer_kwargs={"objective": objective},
                        per_device_train_batch_size=2, **settings)


def _mean_loss(pc, pr, rc, rr, beta):
    return (-torch.nn.functional.logsigmoid(beta * ((pc - pr) - (rc - rr)))).mean()


def _three_arguments(pc, pr, beta):
    return pc - pr


def _detached(pc, pr, rc, rr, beta):
    return torch.ones_like(pc.detach())


def _nan(pc, pr, rc, rr, beta):
    return pc * float("nan")


def _raises(pc, pr, rc, rr, beta):
    raise RuntimeError("boom\nsecond line")


@pytest.mark.parametrize("objective, error, words", [
    ("no_such_loss", ValueError, "unknown objective 'no_such_loss'"),
    ("missing.py:loss", ValueError, "objective file not found"),
    (42, TypeError, "objective must be a name or a function"),
    (_mean_loss, ValueError, "must return per-pair losses of shape [2]"),
    (_three_arguments, TypeError, "must accept loss(policy_chosen_logps"),
    (_detached, ValueError, "not differentiable"),
    (_nan, ValueError, "non-finite losses"),
    (_raises, ValueError, "failed on a test batch: RuntimeError: boom"),
])
def test_bad_objectives_fail_before_training_in_one_line(world, objective, error, words):
    with pytest.raises(error) as caught:
        _build(world, objective)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("settings, words", [
    ({"loss_type": "hinge"}, "loss_type"),
    ({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5]}, "loss_type"),
    ({"f_divergence_type": "js_divergence"}, "f_divergence_type"),
    ({"use_weighting": True}, "use_weighting"),
])
def test_settings_that_replace_the_loss_are_rejected(world, settings, words):
    with pytest.raises(ValueError, match=words) as caught:
        _build(world, "dpo", **settings)
    assert "\n" not in str(caught.value)
