"""The preference objective catalog: shapes, gradients, formulas at hand-computed points, code text, reading
functions from files, and the command."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from llm2.archive.function_files import read_function
from llm2.cli import main
from llm2.sandbox.loader import load_function
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference.contract import PREFERENCE_ARGUMENTS, PREFERENCE_CONTRACT

torch.set_num_threads(1)

CATALOG_NAMES = ["dpo", "hinge", "ipo", "cdpo", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard",
                 "apo_zero", "apo_down", "kto_pair", "discopop", "cell", "padll", "aql", "aqfl", "dbaql", "pfl"]
BATCH_STATISTIC = ["kto_pair", "aql", "aqfl", "dbaql"]
LN2 = math.log(2.0)


def softplus(v: float) -> float:  # -log sigmoid(-v), scalar, for the hand-computed values
    return math.log1p(math.exp(v))


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def tensors(*columns: list[float]) -> list[torch.Tensor]:
    return [torch.tensor(c, dtype=torch.float64) for c in columns]


def at_rho(name: str, rho: list[float], beta: float) -> list[float]:
    """Per-pair losses with policy_chosen = rho and everything else 0, so that x = beta * rho."""
    zeros = [0.0] * len(rho)
    return OBJECTIVES[name](*tensors(rho, zeros, zeros, zeros), beta).tolist()


def random_batch(batch: int, seed: int) -> list[torch.Tensor]:
    """Summed log-probs as in training: around -30, the policy a little off the reference."""
    generator = torch.Generator().manual_seed(seed)
    reference = -30.0 + 5.0 * torch.randn(2, batch, generator=generator)
    policy = reference + 2.0 * torch.randn(2, batch, generator=generator)
    return [policy[0].clone().requires_grad_(), policy[1].clone().requires_grad_(), reference[0], reference[1]]


def test_catalog_holds_every_design_row():
    assert list(OBJECTIVES) == CATALOG_NAMES
    for name, objective in OBJECTIVES.items():
        assert objective.name == name and objective.formula and objective.source


@pytest.mark.parametrize("name", CATALOG_NAMES)
@pytest.mark.parametrize("beta", [0.05, 0.5])
def test_finite_differentiable_per_pair_losses(name, beta):
    inputs = random_batch(batch=16, seed=7)
    losses = OBJECTIVES[name](*inputs, beta)
    assert losses.shape == (16,)
    assert torch.isfinite(losses).all()
    losses.mean().backward()
    for grad in (inputs[0].grad, inputs[1].grad):
        assert grad is not None and torch.isfinite(grad).all()
    # Every loss must depend on the policy somewhere in the batch.
    assert (inputs[0].grad.abs() + inputs[1].grad.abs()).sum() > 0


@pytest.mark.parametrize("name", CATALOG_NAMES)
def test_batch_of_one_is_finite(name):
    inputs = random_batch(batch=1, seed=3)
    losses = OBJECTIVES[name](*inputs, 0.1)
    assert losses.shape == (1,) and torch.isfinite(losses).all()
    losses.sum().backward()
    assert torch.isfinite(inputs[0].grad).all() and torch.isfinite(inputs[1].grad).all()


# Objectives whose formula is bounded for large |x| must stay finite there (no exp overflow, no log(0)).
@pytest.mark.parametrize("name", ["dpo", "hinge", "cdpo", "robust", "exo_pair", "nca_pair", "bco_pair", "apo_zero",
                                  "apo_down", "kto_pair", "discopop", "padll", "aql", "aqfl", "pfl"])
def test_stable_at_extreme_margins(name):
    chosen = torch.tensor([2000.0, -2000.0, 0.0], requires_grad=True)
    zeros = torch.zeros(3)
    losses = OBJECTIVES[name](chosen, zeros, zeros, zeros, 0.5)
    assert torch.isfinite(losses).all()
    losses.sum().backward()
    assert torch.isfinite(chosen.grad).all()


@pytest.mark.parametrize("name", CATALOG_NAMES)
def test_code_text_computes_the_same_numbers(name):
    objective = OBJECTIVES[name]
    assert objective.code.startswith(f"def {name}(") and "import" not in objective.code
    loaded = load_function(objective.code, PREFERENCE_CONTRACT)
    inputs = [t.detach() for t in random_batch(batch=8, seed=11)]
    assert torch.equal(loaded(*inputs, 0.05), objective(*inputs, 0.05))


def close(actual: list[float], expected: list[float]) -> bool:
    return all(math.isclose(a, e, rel_tol=1e-9, abs_tol=1e-9) for a, e in zip(actual, expected, strict=True))


def test_margin_losses_at_hand_computed_points():
    # x = beta * rho with beta = 0.5: rho = 0, 2, -2 -> x = 0, 1, -1.
    rho, beta = [0.0, 2.0, -2.0], 0.5
    assert close(at_rho("dpo", rho, beta), [LN2, softplus(-1), softplus(1)])
    assert close(at_rho("hinge", rho, beta), [1.0, 0.0, 2.0])
    assert close(at_rho("cdpo", rho, beta), [LN2, 0.9 * softplus(-1) + 0.1 * softplus(1),
                                             0.9 * softplus(1) + 0.1 * softplus(-1)])
    assert close(at_rho("robust", rho, beta), [LN2, (0.9 * softplus(-1) - 0.1 * softplus(1)) / 0.8,
                                               (0.9 * softplus(1) - 0.1 * softplus(-1)) / 0.8])
    # exo_pair at x = 0: 0.5(-ln2 - ln 0.999) + 0.5(-ln2 - ln 0.001) = 2.7612...
    exo_at_zero = -LN2 - 0.5 * (math.log(0.999) + math.log(0.001))
    assert math.isclose(exo_at_zero, 2.761231, abs_tol=1e-6)
    assert close(at_rho("exo_pair", [0.0], beta), [exo_at_zero])
    assert close(at_rho("cell", rho, beta), [0.5 * LN2 + 0.5, 0.5 * softplus(-1) + 0.5 * math.exp(-1),
                                             0.5 * softplus(1) + 0.5 * math.exp(1)])
    # padll: weight 0.9 when rho >= 0, 0.45 when rho < 0.
    assert close(at_rho("padll", rho, beta), [0.9 * LN2, 0.9 * softplus(-1), 0.45 * softplus(1)])
    # ipo: (rho - 1/(2 beta))^2 with beta = 0.1: rho = 4 -> 1, rho = 5 -> 0.
    assert close(at_rho("ipo", [4.0, 5.0, 0.0], 0.1), [1.0, 0.0, 25.0])


def test_discopop_at_hand_computed_points():
    # x = 0: sigma(0) = 0.5 on both parts: 0.5 ln 2 + 0.5 = 0.8466 (the paper's 0.847).
    assert math.isclose(at_rho("discopop", [0.0], 1.0)[0], 0.5 * LN2 + 0.5, rel_tol=1e-12)
    assert math.isclose(0.5 * LN2 + 0.5, 0.846574, abs_tol=1e-6)
    # x = 0.05 = tau: sigma(1) weights the exponential part.
    w = sigmoid(1.0)
    assert math.isclose(at_rho("discopop", [0.05], 1.0)[0], (1 - w) * softplus(-0.05) + w * math.exp(-0.05),
                        rel_tol=1e-12)
    # Far from 0 one part takes over: exp(-x) for x >> tau, -log sigma(x) for x << -tau.
    assert close(at_rho("discopop", [2.0, -2.0], 1.0), [math.exp(-2.0), softplus(2.0)])


def test_discopop_is_non_convex_with_the_papers_extrema():
    x = torch.linspace(-0.5, 0.5, 10001, dtype=torch.float64, requires_grad=True)
    zeros = torch.zeros_like(x)
    OBJECTIVES["discopop"](x, zeros, zeros, zeros, 1.0).sum().backward()
    slope = x.grad
    sign_changes = (torch.sign(slope[1:]) != torch.sign(slope[:-1])).nonzero().flatten().tolist()
    assert len(sign_changes) == 2
    minimum, maximum = (x[i].item() for i in sign_changes)
    assert slope[sign_changes[0]] < 0 < slope[sign_changes[0] + 1] and -0.13 < minimum < -0.11
    assert slope[sign_changes[1]] > 0 > slope[sign_changes[1] + 1] and 0.06 < maximum < 0.08
    # Hence at rho = 0 its gradient points the other way from DPO's (DESIGN.md §4).
    at_zero = torch.zeros(1, requires_grad=True)
    OBJECTIVES["discopop"](at_zero, torch.zeros(1), torch.zeros(1), torch.zeros(1), 0.05).sum().backward()
    assert at_zero.grad.item() > 0


def test_reward_split_losses_at_hand_computed_points():
    # Columns: policy chosen, policy rejected, reference chosen, reference rejected; beta = 0.5.
    # Pair 1: r_c = 2, r_r = 0. Pair 2: r_c = 0, r_r = -2. Pair 3: r_c = r_r = 0.
    inputs = tensors([-8.0, -10.0, -10.0], [-10.0, -12.0, -10.0], [-10.0, -10.0, -10.0], [-10.0, -10.0, -10.0])
    beta = 0.5

    def value(name):
        return OBJECTIVES[name](*inputs, beta).tolist()

    assert close(value("nca_pair"), [softplus(-1) + 0.5 * softplus(1) + 0.5 * LN2,
                                     LN2 + 0.5 * LN2 + 0.5 * softplus(-1), 2 * LN2])
    assert close(value("bco_pair"), [softplus(-1) + LN2, LN2 + softplus(-1), 2 * LN2])
    assert close(value("sppo_hard"), [(2 - 1) ** 2 + 1.0, 1.0 + (-2 + 1) ** 2, 2.0])
    assert close(value("apo_zero"), [1 - sigmoid(1) + 0.5, 0.5 + sigmoid(-1), 1.0])
    assert close(value("apo_down"), [sigmoid(1) + 1 - sigmoid(1), 0.5 + 1 - sigmoid(1), 1.0])


def test_kto_pair_batch_kl_terms():
    beta = 0.5
    # Negative mean ratios are floored: r_c = [2, -4] (mean -1 -> z_c = 0), r_r = [0, 0] (z_r = 0).
    zeros = [0.0, 0.0]
    got = OBJECTIVES["kto_pair"](*tensors([2.0, -4.0], zeros, zeros, zeros), beta).tolist()
    assert close(got, [(1 - sigmoid(1.0)) + 0.5, (1 - sigmoid(-2.0)) + 0.5])
    # Positive means are used: r_c = [4, 2] (z_c = 3), r_r = [1, 3] (z_r = 2).
    got = OBJECTIVES["kto_pair"](*tensors([4.0, 2.0], [1.0, 3.0], zeros, zeros), beta).tolist()
    assert close(got, [2 * (1 - sigmoid(1.0)), 1.0])


def test_adaptive_losses_on_one_pair_use_zero_spread():
    # One pair at x = 0: the batch std/var is 0 (population convention), the mean is 0.
    q = sigmoid(0.05 * 0.5)  # aql: m = 0.5, q = sigma(tau * m - 0)
    assert close(at_rho("aql", [0.0], 0.05), [q * LN2 + (1 - q) * 1.0])
    r = sigmoid(0.1 * 0.025)  # aqfl: m1 = 0, m2 = 0.05 * sigma(0) = 0.025
    assert close(at_rho("aqfl", [0.0], 0.05), [r * LN2 + (1 - r) * 1.0])
    assert close(at_rho("dbaql", [0.0], 0.05), [0.5 * LN2 + 0.5])


def test_adaptive_losses_on_two_pairs():
    # beta = 1, x = [0.05, -0.05], so x / tau = [1, -1]: mean 0, population std 1, variance 1.
    rho = [0.05, -0.05]
    c = sigmoid(1.0)
    assert close(at_rho("dbaql", rho, 1.0), [c * softplus(-0.05 / 0.9) + (1 - c) * math.exp(-0.9 * 0.05),
                                             c * softplus(0.05 / 0.9) + (1 - c) * math.exp(0.9 * 0.05)])
    q1, q2 = sigmoid(0.05 * 0.5 - 0.05), sigmoid(0.05 * 0.5 + 0.05)  # aql: mean 0 -> m = 0.5
    assert close(at_rho("aql", rho, 1.0), [q1 * softplus(-0.05) + (1 - q1) * 0.95,
                                           q2 * softplus(0.05) + (1 - q2) * 1.05])
    m1 = 1.0 * (sigmoid(-1.0) + sigmoid(1.0)) / 2  # = 0.5
    m2 = m1 + 0.05 * (0.5 - m1)
    r1, r2 = sigmoid(0.1 * abs(1 - m2)), sigmoid(0.1 * abs(-1 - m2))
    assert close(at_rho("aqfl", rho, 1.0), [r1 * softplus(-0.05) + (1 - r1) * 0.95,
                                            r2 * softplus(0.05) + (1 - r2) * 1.05])


def test_pfl_branches_on_the_policy_log_probs():
    # Both pairs have rho = 0 (x = 0); only which completion the policy prefers differs.
    inputs = tensors([-1.0, -2.0], [-2.0, -1.0], [-1.0, -2.0], [-2.0, -1.0])
    assert close(OBJECTIVES["pfl"](*inputs, 0.05).tolist(), [0.5 * LN2, 2.0])
    # Chosen preferred, x = 0.05 -> x / tau = 1; not preferred, x = 0.025 -> 2 * (1 - 0.5).
    inputs = tensors([-1.0, -2.0], [-2.0, -1.5], [-2.0, -3.0], [-2.0, -2.0])
    assert close(OBJECTIVES["pfl"](*inputs, 0.05).tolist(), [0.5 * softplus(-1.0), 1.0])


EXPORTED = '''\
"""Objectives exported by llm2."""
import torch
import torch.nn.functional as F

FORMULAS = {"soft_margin": "-log sigma(x - 0.1)"}


def soft_margin(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    """Shift the DPO margin by 0.1 so ties are still pushed apart."""
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(beta * rho - 0.1)


def plain(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    return torch.relu(1 - beta * (policy_chosen_logps - policy_rejected_logps))
'''


def test_read_function_from_a_file_without_running_it(tmp_path):
    path = tmp_path / "found.py"
    path.write_text(EXPORTED + "\nraise SystemExit('the file was executed')\n")
    function = read_function(f"{path}:soft_margin", PREFERENCE_CONTRACT)
    assert function.name == "soft_margin"
    assert function.thought == "Shift the DPO margin by 0.1 so ties are still pushed apart."
    assert function.code.startswith("def soft_margin(") and "SystemExit" not in function.code
    zeros = torch.zeros(2)
    loaded = load_function(function.code, PREFERENCE_CONTRACT)  # as the sandbox's child would
    assert torch.allclose(loaded(zeros, zeros, zeros, zeros, 0.1), torch.full((2,), softplus(0.1)))
    assert read_function(f"{path}:plain", PREFERENCE_CONTRACT).name == "plain"

    single = tmp_path / "single.py"
    single.write_text(EXPORTED.split("\n\ndef plain")[0])
    assert read_function(str(single), PREFERENCE_CONTRACT).name == "soft_margin"

    with pytest.raises(ValueError, match="2 functions take the contract's arguments.*choose one"):
        read_function(str(path), PREFERENCE_CONTRACT)
    with pytest.raises(ValueError, match="no function 'missing'.*soft_margin, plain"):
        read_function(f"{path}:missing", PREFERENCE_CONTRACT)
    with pytest.raises(ValueError, match="cannot read"):
        read_function(f"{tmp_path / 'absent.py'}:x", PREFERENCE_CONTRACT)
    nothing = tmp_path / "nothing.py"
    nothing.write_text("x = 1\n")
    with pytest.raises(ValueError, match="0 functions take"):
        read_function(str(nothing), PREFERENCE_CONTRACT)
    broken = tmp_path / "broken.py"
    broken.write_text("def loss(:\n")
    with pytest.raises(ValueError, match="syntax error at line 1"):
        read_function(str(broken), PREFERENCE_CONTRACT)
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def loss(a, b):\n    return a\n")
    with pytest.raises(ValueError, match="takes \\(a, b\\); the contract's arguments"):
        read_function(f"{wrong}:loss", PREFERENCE_CONTRACT)


def test_catalog_needs_only_torch():
    # A user imports the catalog into their own training: nothing else of llm2 (or HF) may come along.
    script = ("import sys, llm2.tasks.preference.catalog; "
              "print(sorted(m for m in sys.modules if m.startswith(('llm2', 'transformers', 'trl', 'ray'))))")
    loaded = eval(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    allowed = {"llm2", "llm2.tasks", "llm2.task_api", "llm2.task_api.base", "llm2.task_api.registry",
               "llm2.task_api.vocabulary", "llm2.tasks.preference", "llm2.tasks.preference.catalog",
               "llm2.tasks.preference.losses"}
    assert [m for m in loaded if m not in allowed] == []


def test_objectives_command_lists_all():
    result = CliRunner().invoke(main, ["objectives"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in CATALOG_NAMES:
        assert name in result.output
    assert "Lu et al. 2024" in result.output

    result = CliRunner().invoke(main, ["objectives", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["name"] for row in rows] == CATALOG_NAMES
    assert rows[0]["formula"] == "−log σ(x)" and rows[0]["code"].startswith("def dpo(") and rows[0]["reference"]

    result = CliRunner().invoke(main, ["objectives", "--task", "nope"])
    assert result.exit_code == 2 and "unknown task 'nope'" in result.output and "Traceback" not in result.output
