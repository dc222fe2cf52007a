"""The classification task: settings, the train/score split of its data, label noise, the baselines, the contract's
checks, training and scoring in-process (evaluate_trusted), the offline proposer, the CIFAR-10 reader's restricted
unpickler and the fake-CIFAR path."""

from __future__ import annotations

import json
import math
import os
import pickle
import statistics
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from llm2.archive.records import EvaluationRecord, RunInfo
from llm2.discovery.parse import parse_reply
from llm2.trusted import evaluate_trusted
from llm2.proposers.base import Message, ProposalRequest, ScoredCandidate
from llm2.report.figures import Figure, FigureContext, MissingFigure
from llm2.sandbox.loader import load_function
from llm2.sandbox.static_checks import static_check
from llm2.task_api.base import CandidateError, EvalSetting
from llm2.task_api.cache import load
from llm2.tasks.classification import cifar, data
from llm2.tasks.classification.figures import accuracy_against_noise, curve
from llm2.tasks.classification.losses import BASELINES, FUNCTIONS
from llm2.tasks.classification.proposer import ClassificationOfflineProposer, read_spec
from llm2.tasks.classification.settings import ClassificationSettings
from llm2.tasks.classification.task import ClassificationTask
from llm2.task_api.settings import SettingsError

TASK = ClassificationTask()


# -- settings ------------------------------------------------------------------------------------------------------
def test_settings_parse_and_refuse_bad_options():
    settings = TASK.parse_settings({"label_noise": "0.2", "data_seed": "3", "epochs": "5"})
    assert (settings.label_noise, settings.data_seed, settings.recipe.epochs) == (0.2, 3, 5)
    assert settings.recipe.lr == ClassificationSettings().recipe.lr  # not given: the dataset's default
    with pytest.raises(SettingsError, match="unknown option 'noise'.*label_noise"):
        TASK.parse_settings({"noise": "0.2"})
    with pytest.raises(SettingsError, match=r"label_noise must be in \[0, 0.9\)"):
        TASK.parse_settings({"label_noise": "0.95"})
    with pytest.raises(SettingsError, match="'abc' is not a number"):
        TASK.parse_settings({"label_noise": "abc"})
    with pytest.raises(SettingsError, match="dataset must be one of digits, cifar10"):
        TASK.parse_settings({"dataset": "mnist"})
    with pytest.raises(SettingsError, match="cifar10 needs data_dir"):
        TASK.parse_settings({"dataset": "cifar10"})
    with pytest.raises(SettingsError, match="epochs must be between"):
        TASK.parse_settings({"epochs": "0"})


def test_heldout_settings_change_one_knob_each():
    settings = ClassificationSettings()
    heldout = TASK.heldout_settings(settings)
    assert sorted(s.label_noise for s in heldout if s.data_seed == 0) == [0.0, 0.2, 0.6]
    assert sorted(s.data_seed for s in heldout if s.label_noise == 0.4) == [1, 2, 3]
    assert all(s.dataset == "digits" for s in heldout)
    with_cifar = TASK.heldout_settings(replace(settings, data_dir="/somewhere", epochs=7))
    assert [(s.dataset, s.epochs) for s in with_cifar if s.dataset == "cifar10"] == [("cifar10", None)]


# -- data: the split and the noise ---------------------------------------------------------------------------------
def test_training_files_hold_no_test_images_and_no_clean_labels():
    settings = ClassificationSettings(label_noise=0.4)
    TASK.prepare(settings)
    files = data.cache_files(settings)
    train_images = load(files.train_images)
    train_labels = load(files.train_labels)
    assert set(train_images) == {"images"} and set(train_labels) == {"labels"}
    test = load(files.test)
    assert len(train_images["images"]) == 1200 and len(test["images"]) == 597
    training_rows = {bytes(row.numpy()) for row in train_images["images"].reshape(1200, -1)}
    assert not any(bytes(row.numpy()) in training_rows for row in test["images"].reshape(597, -1))
    truth = load(files.train_truth)["labels"]
    assert not torch.equal(train_labels["labels"], truth)  # the training side has the noisy labels only
    loaded = TASK.training_data(settings)
    assert torch.equal(loaded.images, train_images["images"]) and torch.equal(loaded.labels, train_labels["labels"])


def test_training_data_needs_only_the_training_files(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM2_CACHE_DIR", str(tmp_path))
    settings = ClassificationSettings(label_noise=0.2, data_seed=5)
    TASK.prepare(settings)
    files = data.cache_files(settings)
    assert all(p.is_relative_to(tmp_path) and p.exists() for p in (files.test, files.train_truth))
    os.remove(files.test)
    os.remove(files.train_truth)
    loaded = TASK.training_data(settings)
    assert loaded.images.shape == (1200, 8, 8) and loaded.labels.shape == (1200,)


def test_noise_rate_is_realised_exactly_and_nested():
    truth = load(data.cache_files(ClassificationSettings(label_noise=0.4)).train_truth)["labels"]
    corrupted = {}
    for noise in (0.0, 0.2, 0.4):
        settings = ClassificationSettings(label_noise=noise)
        TASK.prepare(settings)
        noisy = TASK.training_data(settings).labels
        changed = noisy != truth
        assert int(changed.sum()) == round(noise * len(truth))
        corrupted[noise] = changed
    assert bool((corrupted[0.4] | ~corrupted[0.2]).all())  # every label wrong at 0.2 is wrong at 0.4 too
    wrong = TASK.training_data(ClassificationSettings(label_noise=0.4)).labels[corrupted[0.4]]
    counts = torch.bincount(wrong, minlength=10)
    assert bool((counts > 0).all())  # the wrong classes are spread over all classes


def test_hidden_paths_name_the_digits_file():
    (path,) = TASK.hidden_paths()
    assert Path(path).name == "digits.csv.gz" and Path(path).is_file()


# -- baselines and the contract ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_pass_the_contract_and_load_from_their_code(name):
    code = BASELINES[name].code
    assert static_check(code, TASK.contract) == []
    fn = load_function(code, TASK.contract)
    TASK.check_contract(fn, None)
    logits = 20 * torch.randn(16, 10)
    targets = torch.randint(0, 10, (16,))
    losses = fn(logits, targets)
    assert losses.shape == (16,) and losses.dtype == torch.float32 and bool(torch.isfinite(losses).all())
    assert torch.allclose(losses, FUNCTIONS[name](logits, targets))


def test_baselines_match_their_formulas():
    logits = torch.randn(6, 10)
    targets = torch.randint(0, 10, (6,))
    p_true = torch.softmax(logits, -1)[torch.arange(6), targets]
    ce = -torch.log(p_true)
    assert torch.allclose(FUNCTIONS["label_smoothing"](logits, targets),
                          torch.nn.functional.cross_entropy(logits, targets, reduction="none", label_smoothing=0.1))
    assert torch.allclose(FUNCTIONS["mean_absolute_error"](logits, targets), 2 * (1 - p_true), atol=1e-6)
    assert torch.allclose(FUNCTIONS["generalized_cross_entropy"](logits, targets), (1 - p_true ** 0.7) / 0.7)
    assert torch.allclose(FUNCTIONS["symmetric_cross_entropy"](logits, targets), 0.1 * ce + 4 * (1 - p_true),
                          atol=1e-6)
    assert torch.allclose(FUNCTIONS["focal"](logits, targets), (1 - p_true) ** 2 * ce, atol=1e-6)


@pytest.mark.parametrize("code, reason", [
    ("def loss(logits, targets):\n    return F.cross_entropy(logits, targets)\n", r"shape \(\) .* needs \(8,\)"),
    ("def loss(logits, targets):\n    return logits.argmax(dim=1)\n", "int64, not a float tensor"),
    ("def loss(logits, targets):\n    return torch.log(logits[:, 0] - logits[:, 0])\n", "non-finite values"),
    ("def loss(logits, targets):\n    return F.cross_entropy(logits.detach(), targets, reduction='none')\n",
     "no gradient"),
    ("def loss(logits, targets):\n    return (logits * 0).sum(dim=1)\n", "zero everywhere"),
    ("def loss(logits, targets):\n    p = F.softmax(logits, dim=-1)\n"
     "    return -torch.log(p.gather(1, targets[:, None]).squeeze(1))\n",
     "confident logits of ±60"),
])
def test_contract_rejects_broken_losses_with_a_reason(code, reason):
    with pytest.raises(CandidateError, match=reason) as caught:
        TASK.check_contract(load_function(code, TASK.contract), None)
    assert caught.value.stage == "contract"


# -- training and scoring in-process -------------------------------------------------------------------------------
def test_evaluation_is_deterministic_per_seed_and_reports_metrics():
    settings = ClassificationSettings(label_noise=0.4, epochs=8)
    first = evaluate_trusted(TASK, BASELINES["cross_entropy"].code, EvalSetting(settings, seed=3))
    again = evaluate_trusted(TASK, BASELINES["cross_entropy"].code, EvalSetting(settings, seed=3))
    other = evaluate_trusted(TASK, BASELINES["cross_entropy"].code, EvalSetting(settings, seed=4))
    assert first.status == "ok", first.error
    assert first.fitness == again.fitness and first.loss_trace == again.loss_trace
    assert first.loss_trace != other.loss_trace
    assert len(first.loss_trace) == 8 and first.loss_trace[-1] < first.loss_trace[0]
    values = first.metrics.values
    assert {"test_nll", "ece", "train_fit", "memorised", "loss_final"} <= set(values)
    assert 0.0 <= values["ece"] <= 1.0 and 0.0 <= values["memorised"] <= 1.0
    reference = TASK.scorer(settings).reference_metrics()
    assert reference.fitness < 0.3 < first.fitness  # trained beats the untrained start (chance is 0.1)


def test_training_stops_with_a_reason_when_the_loss_diverges():
    code = ("CALLS = []\n"
            "def loss(logits, targets):\n"
            "    CALLS.append(1)\n"
            "    ce = F.cross_entropy(logits, targets, reduction='none')\n"
            "    return ce * math.nan if len(CALLS) > 5 else ce\n")  # fine for the checks and two steps, then NaN
    result = evaluate_trusted(TASK, code, EvalSetting(ClassificationSettings(epochs=3), seed=0))
    assert result.status == "failed" and result.stage == "train"
    assert "non-finite" in result.error


def test_probe_checkpoint_is_called_once_and_can_stop_training():
    settings = ClassificationSettings(epochs=4)
    calls = []
    output = TASK.train(FUNCTIONS["cross_entropy"], TASK.training_data(settings), EvalSetting(settings),
                        checkpoint=lambda out: calls.append(out.steps) or False)
    per_epoch = 1200 // 128
    assert calls == [math.ceil(TASK.probe_fraction * 4 * per_epoch)] and output.steps == calls[0]
    assert "probe" in output.stop_reason
    assert set(output.weights) == set(TASK.output_spec(TASK.training_data(settings)))


@pytest.mark.slow
def test_a_robust_loss_beats_cross_entropy_at_noise_04():
    settings = ClassificationSettings(label_noise=0.4)
    accuracy = {name: [evaluate_trusted(TASK, BASELINES[name].code, EvalSetting(settings, seed=s)).fitness
                       for s in range(3)] for name in ("cross_entropy", "generalized_cross_entropy")}
    ce, gce = accuracy["cross_entropy"], accuracy["generalized_cross_entropy"]
    # every GCE seed above every CE seed (one-sided rank test, p = 1/20), and by more than 3 pooled stds
    pooled = math.sqrt((statistics.variance(ce) + statistics.variance(gce)) / 2)
    assert min(gce) > max(ce), accuracy
    assert statistics.mean(gce) - statistics.mean(ce) > 3 * pooled, accuracy


# -- the offline proposer ------------------------------------------------------------------------------------------
def _history(fitness: dict[str, float]) -> list[ScoredCandidate]:
    return [ScoredCandidate(name, BASELINES[name].code, value, "baseline") for name, value in fitness.items()]


def test_offline_proposer_replies_parse_load_and_are_reproducible():
    history = _history({"cross_entropy": 0.77, "generalized_cross_entropy": 0.92, "symmetric_cross_entropy": 0.91,
                        "label_smoothing": 0.78})
    replies = []
    for index in range(8):
        request = ProposalRequest((Message("user", "propose"),), tuple(history), 1.0, seed=index)
        reply = ClassificationOfflineProposer(seed=1).propose(request)
        assert ClassificationOfflineProposer(seed=1).propose(request).text == reply.text
        parsed = parse_reply(reply.text)
        assert list(json.loads(reply.text)) == ["thought", "name", "code"] and parsed.repairs == ()
        assert static_check(parsed.code, TASK.contract) == []
        TASK.check_contract(load_function(parsed.code, TASK.contract), None)
        assert read_spec(parsed.name, parsed.code) is not None  # its own code is readable back as a parent
        history.append(ScoredCandidate(parsed.name, parsed.code, 0.9, "ok", parsed.thought))
        replies.append(reply.text)
    assert len(set(replies)) == len(replies)
    other_seed = ClassificationOfflineProposer(seed=2).propose(
        ProposalRequest((Message("user", "propose"),), tuple(history[:4]), 1.0, seed=0))
    assert other_seed.text != replies[0]


def test_offline_proposer_builds_on_its_own_best_after_a_resume():
    first = ClassificationOfflineProposer(0).propose(ProposalRequest(
        (Message("user", "go"),), tuple(_history({"generalized_cross_entropy": 0.9})), 1.0, seed=0))
    own = parse_reply(first.text)
    history = [ScoredCandidate(own.name, own.code, 0.95, "ok"),  # its own candidate, now the best
               ScoredCandidate("someone_elses", "def loss(logits, targets):\n    return logits.sum(1)\n", 0.99, "ok")]
    reply = parse_reply(ClassificationOfflineProposer(0).propose(
        ProposalRequest((Message("user", "go"),), tuple(history), 1.0, seed=1)).text)
    assert own.name in reply.thought and "someone_elses" not in reply.thought


# -- figures -------------------------------------------------------------------------------------------------------
def test_curve_gives_cross_entropy_its_known_shape():
    grid = [0.1, 0.5, 0.9]
    value = curve(FUNCTIONS["cross_entropy"], {"p": grid})
    assert value["loss"] == pytest.approx([-math.log(p) for p in grid], rel=1e-5)
    assert value["slope"] == pytest.approx([-1 / p for p in grid], rel=1e-4)
    bounded = curve(FUNCTIONS["mean_absolute_error"], {"p": grid})
    assert bounded["slope"] == pytest.approx([-2.0] * 3, rel=1e-4)


def _figure_context(tmp_path: Path, evaluations: list) -> FigureContext:
    run = RunInfo("run", "classification", "offline", "", {}, {}, {}, 0.0, None, "finished")
    return FigureContext(run, tmp_path, "classification", ClassificationSettings(), [], evaluations, [], None, tmp_path)


def test_accuracy_against_noise_draws_heldout_points_or_says_how_to_get_them(tmp_path):
    assert isinstance(accuracy_against_noise(TASK, _figure_context(tmp_path, [])), MissingFigure)
    records = []
    for number, (name, noise, accuracy) in enumerate([("cross_entropy", 0.0, 0.97), ("cross_entropy", 0.2, 0.90),
                                                       ("cross_entropy", 0.2, 0.89), ("other_data", 0.6, 0.5)]):
        settings = ClassificationSettings(label_noise=noise, data_seed=7 if name == "other_data" else 0)
        records.append(EvaluationRecord(id=number, candidate_name=name, code_hash="h", suite="heldout",
                                        setting=EvalSetting(settings, seed=number).label(), fitness=accuracy,
                                        seconds=1.0, status="ok", error=None))
    figure = accuracy_against_noise(TASK, _figure_context(tmp_path, records))
    assert isinstance(figure, Figure) and (tmp_path / figure.file).stat().st_size > 1000
    only_other = accuracy_against_noise(TASK, _figure_context(tmp_path, records[3:]))
    assert isinstance(only_other, MissingFigure)  # one point, and from another data seed


def test_export_usage_names_the_function():
    text = TASK.export_usage("robust_loss", "losses.py")
    assert "from losses import robust_loss" in text and "robust_loss(model(images), targets).mean()" in text


# -- CIFAR-10 ------------------------------------------------------------------------------------------------------
class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": _Exploit(marker), "labels": [0]})
    with pytest.raises(pickle.UnpicklingError, match="refused to load (posix|os).system"):
        cifar.restricted_loads(payload)
    assert not marker.exists()
    folder = tmp_path / cifar.FOLDER
    folder.mkdir()
    (folder / cifar.TEST_BATCH).write_bytes(payload)
    with pytest.raises(cifar.CifarFormatError, match="not a readable CIFAR-10 batch"):
        cifar.read_batch(folder / cifar.TEST_BATCH)
    assert not marker.exists()


class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2's str opcodes, as in the real batches (pickled by Python 2, read with
    encoding="bytes"); Python 3's own protocol 2 would route them through _codecs.encode instead."""

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch = {**pickle._Pickler.dispatch, bytes: save_bytes}


def _write_fake_cifar(root: Path, per_batch: int) -> Path:
    folder = root / cifar.FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in (*cifar.TRAIN_BATCHES, cifar.TEST_BATCH):
        batch = {b"batch_label": name.encode(), b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as file:
            _Python2Pickler(file, protocol=2).dump(batch)
    return folder


def test_fake_cifar_runs_one_tiny_evaluation(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM2_CACHE_DIR", str(tmp_path / "cache"))
    _write_fake_cifar(tmp_path / "data", per_batch=4)
    settings = TASK.parse_settings({"dataset": "cifar10", "data_dir": str(tmp_path / "data"), "epochs": "1",
                                    "label_noise": "0.5"})
    if not torch.cuda.is_available():
        assert TASK.runtime(settings).start == "fork" and TASK.runtime(settings).device == "cpu"
    result = evaluate_trusted(TASK, BASELINES["symmetric_cross_entropy"].code, EvalSetting(settings, seed=0))
    assert result.status == "ok", result.error
    assert 0.0 <= result.fitness <= 1.0 and len(result.loss_trace) == 1
    loaded = TASK.training_data(settings)
    assert loaded.images.shape == (20, 3, 32, 32)
    truth = load(data.cache_files(settings).train_truth)["labels"]
    assert int((loaded.labels != truth).sum()) == 10  # half of the 20 training labels corrupted
