"""Scoring trained weights (trusted supervisor; never runs candidate code): accuracy on the held-out test images
with their clean labels, plus calibration and how much of the label noise the network fitted."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from llm2.task_api.base import CandidateError, Metrics, TrainOutput
from llm2.tasks.classification.data import ScoringData, load_scoring, to_inputs
from llm2.tasks.classification.model import build_model, float_state, load_float_state
from llm2.tasks.classification.settings import ClassificationSettings
from llm2.tasks.classification.train import device_for
from llm2.task_api.threads import single_thread

ECE_BINS = 15
EVAL_BATCH = 1000


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Σ_b (n_b / n) |accuracy_b − confidence_b| over equal-width confidence bins (Guo et al. 2017)."""
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels).float()
    which = torch.clamp((confidence * bins).long(), max=bins - 1)
    gaps = torch.zeros(bins).index_add_(0, which, confidence - correct).abs()  # n_b·|confidence_b − accuracy_b|
    return float(gaps.sum() / len(labels)) if len(labels) else math.nan


class ClassificationScorer:
    def __init__(self, settings: ClassificationSettings):
        self.settings = settings
        self.recipe = settings.recipe
        self.data: ScoringData = load_scoring(settings)
        self.device = device_for(settings)
        self._reference: Metrics | None = None

    def _logits(self, model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        parts = [model(to_inputs(images[i:i + EVAL_BATCH].to(self.device), self.data.dataset)).float().cpu()
                 for i in range(0, len(images), EVAL_BATCH)]
        return torch.cat(parts)

    def _model(self, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
        model = build_model(self.recipe.model)
        try:
            load_float_state(model, weights)
        except (ValueError, RuntimeError) as exc:
            raise CandidateError(f"the trained weights cannot be used: {exc}", stage="score") from None
        if not all(bool(torch.isfinite(t).all()) for t in weights.values()):
            raise CandidateError("the trained weights are not finite", stage="score")
        return model.to(self.device).eval()

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        metrics = self._measure(output.weights, quick)
        if output.loss_trace:
            metrics.values["loss_final"] = float(output.loss_trace[-1])
        return metrics

    def reference_metrics(self) -> Metrics:
        """The untrained network (the initial weights of seed 0)."""
        if self._reference is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                start = float_state(build_model(self.recipe.model))
            self._reference = self._measure(start, False)
        return self._reference

    def _measure(self, weights: dict[str, torch.Tensor], quick: bool) -> Metrics:
        data = self.data
        limit = self.recipe.quick_test if quick and self.recipe.quick_test else len(data.test_labels)
        with single_thread(), torch.no_grad():
            model = self._model(weights)
            logits = self._logits(model, data.test_images[:limit])
            labels = data.test_labels[:limit]
            probabilities = F.softmax(logits, dim=1)
            values = {"test_nll": float(F.cross_entropy(logits, labels)),
                      "ece": expected_calibration_error(probabilities, labels)}
            accuracy = float((logits.argmax(dim=1) == labels).float().mean())
            if not quick:
                values.update(self._fit_to_noise(model))
        return Metrics(fitness=accuracy, values=values)

    def _fit_to_noise(self, model: torch.nn.Module) -> dict[str, float]:
        """How the network treats its own training images: agreement with the noisy labels it was given, and the
        share of the corrupted ones where it predicts the wrong label (memorised noise)."""
        data = self.data
        count = min(len(data.train_labels), self.recipe.fit_sample or len(data.train_labels))
        predicted = self._logits(model, data.train_images[:count]).argmax(dim=1)
        noisy, truth = data.train_labels[:count], data.train_truth[:count]
        corrupted = noisy != truth
        # without corrupted labels there is nothing to memorise: 0 rather than a missing number in every table
        memorised = float((predicted[corrupted] == noisy[corrupted]).float().mean()) if bool(corrupted.any()) else 0.0
        return {"train_fit": float((predicted == noisy).float().mean()), "memorised": memorised}
