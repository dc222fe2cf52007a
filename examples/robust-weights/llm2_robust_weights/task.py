"""Robust regression by iteratively reweighted least squares (IRLS), with the weight function as the candidate.

A candidate is ``weights(residuals) -> array``: given the current residuals divided by a robust scale (numpy,
shape [n]), it returns one non-negative weight per example. Training fits a line by weighted least squares, then
repeats: residuals, the candidate's weights, a new weighted fit. A share of the training targets are wild outliers;
the fitness is minus the mean squared error on clean held-out data, which only the scorer holds. Each training
seed fits on its own random 90 % of the training examples. Least squares
(all weights 1) is the reference; Huber's and Tukey's weights are the textbook robust choices.

Written against llm2's documented task interface only (docs/tasks.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.datasets import make_regression
from sklearn.metrics import mean_squared_error

from llm2 import progress
from llm2.task_api import cache, world_secret
from llm2.task_api.base import (Baseline, CandidateError, Contract, EvalSetting, MetricColumn, Metrics, TaskTexts,
                             TensorSpec, TrainOutput)
from llm2.tasks.defaults import TaskBase
from llm2.task_api.vocabulary import NUMPY_VOCABULARY

FEATURES = 8
TEST_SAMPLES = 2000
ITERATIONS = 20  # reweighting rounds of the full budget
RIDGE = 1e-3  # keeps the weighted normal equations solvable when a candidate zeroes most weights


@dataclass(frozen=True)
class Settings:
    outliers: float = field(default=0.2, metadata={"help": "share of training targets replaced by wild values"})
    samples: int = field(default=300, metadata={"help": "training examples"})
    data_seed: int = field(default=0, metadata={"help": "seed of the data set (true line, inputs, outliers)"})

    def __post_init__(self):
        if not 0 <= self.outliers < 0.5:
            raise ValueError(f"outliers must be in [0, 0.5), not {self.outliers}")
        if self.samples < 4 * FEATURES:
            raise ValueError(f"samples must be at least {4 * FEATURES}, not {self.samples}")


def _paths(settings: Settings):
    # named by the world secret's fingerprint (published by the trusted process that prepared them): another
    # secret, another data set; a worker finds its file without ever reading the secret
    stem = (f"robust-weights-s{world_secret.published_fingerprint()}-seed{settings.data_seed}-n{settings.samples}"
            f"-out{settings.outliers:g}")
    return cache.cache_dir() / f"{stem}-train.pt", cache.cache_dir() / f"{stem}-score.pt"


def build_data(settings: Settings) -> list[dict]:
    """[training half, scoring half]: the scoring half (clean held-out data, the true line) never reaches a worker.
    Drawn from the data seed and the world secret (trusted process only): a candidate that knows the seed cannot
    draw the true line or the held-out data again, nor tell which training targets are outliers."""
    with progress.step(f"robust-weights: making data set {settings.data_seed}"):
        data_seed = world_secret.derive_seed("robust-weights", "data", settings.data_seed) % 2**32  # sklearn's range
        x, y, coef = make_regression(n_samples=settings.samples + TEST_SAMPLES, n_features=FEATURES, noise=1.0,
                                     bias=3.0, coef=True, random_state=data_seed)
        x_train, y_train = x[:settings.samples], y[:settings.samples].copy()
        rng = np.random.default_rng(world_secret.derive_seed("robust-weights", "outliers", settings.data_seed))
        wild = rng.random(settings.samples) < settings.outliers
        y_train[wild] += rng.choice([-1.0, 1.0], wild.sum()) * rng.uniform(3, 10, wild.sum()) * y.std()
    return [{"x": torch.tensor(x_train), "y": torch.tensor(y_train)},
            {"x": torch.tensor(x[settings.samples:]), "y": torch.tensor(y[settings.samples:]),
             "coef": torch.tensor(coef)}]


def weighted_fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[coefficients..., intercept] of weighted least squares (a small ridge keeps it solvable)."""
    design = np.hstack([x, np.ones((len(x), 1))])
    gram = design.T @ (weights[:, None] * design) + RIDGE * np.eye(design.shape[1])
    return np.linalg.solve(gram, design.T @ (weights * y))


def candidate_weights(fn, scaled: np.ndarray, where: str, stage: str) -> np.ndarray:
    try:
        weights = fn(scaled.copy())
    except Exception as exc:  # noqa: BLE001 - any failure of candidate code is the candidate's
        raise CandidateError(f"the function raised {type(exc).__name__}: {exc} ({where})", stage=stage) from None
    if not isinstance(weights, np.ndarray) or weights.shape != scaled.shape:
        shape = getattr(weights, "shape", type(weights).__name__)
        raise CandidateError(f"the function returned {shape}, not a numpy array of shape {scaled.shape}: one "
                             f"weight per example ({where})", stage=stage)
    weights = weights.astype(np.float64)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise CandidateError(f"weights must be finite and non-negative ({where})", stage=stage)
    if weights.sum() <= 0:
        raise CandidateError(f"every weight is zero ({where})", stage=stage)
    return weights


def robust_scale(residuals: np.ndarray) -> float:
    """The median absolute deviation, scaled to a normal's standard deviation."""
    return float(1.4826 * np.median(np.abs(residuals - np.median(residuals)))) + 1e-12


def as_output(beta: np.ndarray, trace: list[float], steps: int, stop_reason: str | None = None) -> TrainOutput:
    return TrainOutput({"coef": torch.tensor(beta[:-1], dtype=torch.float32),
                        "intercept": torch.tensor(beta[-1], dtype=torch.float32)}, trace, steps, stop_reason)


class Scorer:
    def __init__(self, settings: Settings):
        held_out = cache.load(_paths(settings)[1])
        self.x, self.y, self.coef = held_out["x"].numpy(), held_out["y"].numpy(), held_out["coef"].numpy()

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        coef = output.weights["coef"].double().numpy()
        intercept = float(output.weights["intercept"])
        rows = slice(0, 500) if quick else slice(None)
        mse = float(mean_squared_error(self.y[rows], self.x[rows] @ coef + intercept))
        return Metrics(fitness=-mse, values={"mse": mse, "coef_error": float(np.linalg.norm(coef - self.coef))})

    def reference_metrics(self) -> Metrics:
        return self.score(as_output(np.zeros(FEATURES + 1), [], 0))


WEIGHT_CODE = {
    "least_squares": ("def least_squares(residuals):\n"
                      "    return np.ones_like(residuals)\n"),
    "huber": ("def huber(residuals):\n"
              "    r = np.abs(residuals)\n"
              "    return np.minimum(1.0, 1.345 / np.maximum(r, 1e-12))\n"),
    "tukey": ("def tukey(residuals):\n"
              "    u = residuals / 4.685\n"
              "    return np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0)\n"),
}


class RobustWeightsTask(TaskBase):
    name = "robust-weights"
    settings_type = Settings
    contract = Contract(
        arguments=("residuals",), example_name="weights",
        description=("def weights(residuals) -> numpy array  # residuals: float64 numpy array [n], already divided "
                     "by a robust scale (the MAD); return one finite, non-negative weight per example, shape [n]. "
                     "numpy is imported as np."),
        vocabulary=NUMPY_VOCABULARY)  # numpy's pure functions (imported by the candidate) and math (preloaded)
    texts = TaskTexts(
        kind="IRLS weight function",
        description=("Robust linear regression by iteratively reweighted least squares: the weight function decides "
                     "how much each training example counts, given its scaled residual under the current fit. A "
                     "share of the training targets are wild outliers."),
        fitness="minus the mean squared error of the fitted line on clean held-out data", fitness_name="-MSE",
        rules="- Start the code with `import numpy as np`; use numpy only (no randomness).")
    baselines = {name: Baseline(name, "import numpy as np\n\n\n" + code, source="textbook IRLS")
                 for name, code in WEIGHT_CODE.items()}
    reference_baseline = "least_squares"
    discovery_baselines = ("least_squares", "huber", "tukey")
    metric_columns = (MetricColumn("mse", "held-out MSE", 3, better="lower"),
                      MetricColumn("coef_error", "coefficient error", 3, better="lower"))
    offline_proposer = "robust-weights-offline"
    collapse_share = None  # IRLS has no collapse to catch early: every run is short

    # -- trusted main process --------------------------------------------------------------------------------------
    def prepare(self, settings: Settings) -> None:
        world_secret.fingerprint()  # publishes it, for the files' names (and the workers this process starts)
        cache.build_many_once(list(_paths(settings)), lambda: build_data(settings))

    # -- training side ---------------------------------------------------------------------------------------------
    def training_data(self, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
        train = cache.load(_paths(settings)[0])
        return train["x"].numpy(), train["y"].numpy()

    def output_spec(self, data) -> dict[str, TensorSpec]:
        return {"coef": TensorSpec((FEATURES,), "float32"), "intercept": TensorSpec((), "float32")}

    def check_contract(self, fn, data) -> None:
        candidate_weights(fn, np.linspace(-5.0, 5.0, 11), "on 11 residuals from -5 to 5", "contract")

    def train(self, fn, data, setting: EvalSetting, checkpoint=None) -> TrainOutput:
        x, y = data
        keep = np.random.default_rng(setting.seed).random(len(y)) < 0.9  # each training seed fits its own 90 %
        x, y = x[keep], y[keep]
        beta = weighted_fit(x, y, np.ones(len(y)))
        iterations = round(ITERATIONS * setting.budget)
        probe_at = max(1, round(iterations * self.probe_fraction))
        trace: list[float] = []
        for step in range(iterations):
            residuals = y - np.hstack([x, np.ones((len(x), 1))]) @ beta
            scaled = residuals / robust_scale(residuals)
            weights = candidate_weights(fn, scaled, f"at round {step + 1}", "train")
            beta = weighted_fit(x, y, weights)
            trace.append(float(np.mean(weights * scaled ** 2)))
            if not np.isfinite(beta).all():
                return as_output(np.zeros_like(beta), trace, step + 1, "the fit became non-finite")
            if checkpoint is not None and step + 1 == probe_at and not checkpoint(as_output(beta, trace, step + 1)):
                return as_output(beta, trace, step + 1, f"stopped by the probe after {step + 1} rounds")
        return as_output(beta, trace, iterations)

    # -- scoring side ----------------------------------------------------------------------------------------------
    def scorer(self, settings: Settings) -> Scorer:
        return Scorer(settings)

    # -- held-out suite: each setting differs from the discovery's in one knob ---------------------------------------
    def heldout_settings(self, settings: Settings) -> list[Settings]:
        # six settings: fewer could never be called better by an exact sign-flip over settings at 0.05
        return [*(dataclasses.replace(settings, outliers=share) for share in (0.05, 0.1, 0.3, 0.35)),
                *(dataclasses.replace(settings, data_seed=settings.data_seed + k) for k in (1, 2))]

    def setting_text(self, settings: Settings) -> str:
        return f"{settings.outliers:.0%} outliers, {settings.samples} examples, data set {settings.data_seed}"
