"""``classification``: the DiscoPOP paper's classification case (on CIFAR-10 the LLM proposed label smoothing, then
squared error, then the two combined), made to discriminate: the training labels carry symmetric noise, where
losses differ (robust losses beat cross-entropy at 20-40 % noise), and the fitness is the clean test accuracy."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any, Callable

import torch

from llm2.task_api import world_secret
from llm2.task_api.base import Descriptor, EvalSetting, MetricColumn, Runtime, TaskTexts, TensorSpec, TrainOutput
from llm2.tasks.classification.contract import CONTRACT, check_classification_contract
from llm2.tasks.classification.data import (DIGITS_TEST, DIGITS_TRAIN, TrainingData, digits_file, load_training,
                                            prepare_data)
from llm2.tasks.classification.losses import BASELINES
from llm2.tasks.classification.model import build_model, float_state
from llm2.tasks.classification.score import ClassificationScorer
from llm2.tasks.classification.settings import RECIPES, ClassificationSettings
from llm2.tasks.classification.train import device_for, train_classifier
from llm2.tasks.defaults import TaskBase, spec_of

HELDOUT_NOISE = (0.0, 0.2, 0.4, 0.6)
HELDOUT_DATA_SEEDS = (1, 2, 3)  # with three noise levels: six settings, the fewest a sign-flip over settings can call


def recipe_text(dataset: str) -> str:
    """The data, network and training budget of a dataset's default recipe, in words."""
    recipe = RECIPES[dataset]
    data = (f"scikit-learn's 8x8 handwritten digits, {DIGITS_TRAIN:,} training images, an MLP 64-128-128-10"
            if dataset == "digits" else "CIFAR-10's 50,000 training images with random crops and flips, a ResNet-18")
    optimizer = (f"Adam (lr {recipe.lr:g})" if recipe.optimizer == "adam" else
                 f"SGD (lr {recipe.lr:g}, momentum 0.9, weight decay {recipe.weight_decay:g}, cosine decay)")
    return f"{data}, {optimizer} for {recipe.epochs} epochs of batches of {recipe.batch_size}"


class ClassificationTask(TaskBase):
    name = "classification"
    settings_type = ClassificationSettings
    contract = CONTRACT
    texts = TaskTexts(
        kind="classification loss",
        description=(
            "The task: training an image classifier from labels of which a known share is wrong. A neural\n"
            "network is trained from random initial weights for a fixed number of epochs on mini-batches of\n"
            "training images; your loss receives the network's logits and the training labels of each batch and\n"
            "returns one loss per example, and training minimises their mean. A share of the training labels\n"
            f"(the label noise, {ClassificationSettings().label_noise:g} unless the settings say otherwise) was "
            "replaced by a uniformly random\nother class, and the network is large enough to memorise them if the "
            "loss lets it.\n"
            f"On digits (the default): {recipe_text('digits')}.\nOn cifar10: {recipe_text('cifar10')}."),
        fitness=("the accuracy of the trained network on held-out test images with their correct labels (digits:\n"
                 f"the {DIGITS_TEST} images kept out of training; cifar10: its 10,000 test images), 0 to 1, higher\n"
                 "is better, measured once after the whole fixed budget: no early stopping, no validation set"),
        fitness_name="test accuracy",
        expertise=("You are deeply familiar with loss functions for classification, calibration and learning with\n"
                   "noisy labels. Be creative and reference prior literature when possible."),
        rules=("- logits are float32 [batch, classes] (unnormalised); targets are int64 class indices [batch].\n"
               "- Return a float tensor [batch] that is differentiable with respect to logits.\n"
               "- Create any new tensor on the logits' device and dtype (device=logits.device): training may run\n"
               "  on a GPU.\n"
               "- Stay finite for confident logits (gaps of 100 and more between classes, where a softmax\n"
               "  probability underflows to 0): use log_softmax, or clamp before log, pow or division."),
    )
    baselines = BASELINES
    reference_baseline = "cross_entropy"
    discovery_baselines = tuple(BASELINES)
    metric_columns = (
        MetricColumn("test_nll", "test NLL", 3, better="lower"),
        MetricColumn("ece", "ECE", 3, better="lower"),
        MetricColumn("train_fit", "fit to noisy labels", 3),
        MetricColumn("memorised", "wrong labels memorised", 3),
    )
    offline_proposer = "classification-offline"
    offline_proposers = {"classification-offline": "llm2.tasks.classification.proposer:ClassificationOfflineProposer"}
    # MAP-Elites axes: calibration (ECE) and how much of the label noise the network memorised
    descriptors = (Descriptor("ece", "ECE", (0.02, 0.05, 0.1, 0.2)),
                   Descriptor("memorised", "wrong labels memorised", (0.1, 0.25, 0.5, 0.75)))

    def __init__(self) -> None:
        self._scorers: dict[tuple[str, ClassificationSettings], ClassificationScorer] = {}

    def runtime(self, settings: ClassificationSettings) -> Runtime:
        if device_for(settings).type == "cuda":
            return Runtime(start="spawn", device="cuda", gpus=torch.cuda.device_count())
        return Runtime()

    def hidden_paths(self) -> list[str]:
        """Files a candidate's process must not read: scikit-learn's digits (the test images and labels)."""
        return [str(digits_file())]

    # -- trusted main process ----------------------------------------------------------------------------------
    def prepare(self, settings: ClassificationSettings) -> None:
        prepare_data(settings)

    # -- training side -----------------------------------------------------------------------------------------
    def training_data(self, settings: ClassificationSettings) -> TrainingData:
        return load_training(settings)  # warm_up's step of training imports what torch.optim loads lazily

    def output_spec(self, data: TrainingData) -> dict[str, TensorSpec]:
        return _output_spec(RECIPES[data.dataset].model, data.classes)

    def check_contract(self, fn: Callable[..., Any], data: TrainingData | None = None) -> None:
        check_classification_contract(fn, data.classes if data is not None else 10)

    def train(self, fn: Callable[..., Any], data: TrainingData, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        return train_classifier(fn, data, setting, self.probe_fraction, checkpoint)

    # -- scoring side ------------------------------------------------------------------------------------------
    def scorer(self, settings: ClassificationSettings) -> ClassificationScorer:
        key = replace(settings, epochs=None, lr=None)  # scoring does not depend on the training budget
        secret = world_secret.fingerprint()  # another secret, another split and noise
        if (secret, key) not in self._scorers:
            self._scorers[(secret, key)] = ClassificationScorer(key)
        return self._scorers[(secret, key)]

    # -- texts, held-out suite, figures, export ----------------------------------------------------------------
    def setting_text(self, settings: ClassificationSettings) -> str:
        parts = [f"label noise {settings.label_noise:g}", settings.dataset, f"data seed {settings.data_seed}"]
        if settings.epochs is not None:
            parts.append(f"{settings.epochs} epochs")
        if settings.lr is not None:
            parts.append(f"lr {settings.lr:g}")
        return ", ".join(parts)

    def heldout_settings(self, settings: ClassificationSettings) -> list[ClassificationSettings]:
        """Each differs in one knob: the label noise, then the data seed; CIFAR-10 too when data_dir is given."""
        found = ([replace(settings, label_noise=n) for n in HELDOUT_NOISE if n != settings.label_noise]
                 + [replace(settings, data_seed=s) for s in HELDOUT_DATA_SEEDS if s != settings.data_seed])
        if settings.dataset == "digits" and settings.data_dir:
            found.append(replace(settings, dataset="cifar10", epochs=None, lr=None))
        return found

    def figures(self, context: Any) -> list[Any]:
        from llm2.tasks.classification.figures import classification_figures

        return classification_figures(self, context)

    def export_usage(self, example: str, file_name: str) -> str:
        module = file_name.removesuffix(".py")
        return f'''Each function follows the classification contract and returns per-example losses of shape [batch]
(training minimises their mean):

    {example}(logits, targets)    # logits float [batch, classes], targets int64 class indices [batch]

In a PyTorch training loop, in place of F.cross_entropy(logits, targets):
    from {module} import {example}
    for images, targets in loader:
        loss = {example}(model(images), targets).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()'''


@functools.lru_cache(maxsize=4)
def _output_spec(model: str, classes: int) -> dict[str, TensorSpec]:
    return spec_of(float_state(build_model(model, classes)))
