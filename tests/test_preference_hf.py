"""The preference-hf task on a tiny random Llama saved to a temporary directory, a tokenizer built from local words
and a local JSONL of pairs: data preparation and its split, TRL training (full and LoRA), the three fitnesses (the
judge through a real local HTTP server), the sandbox's fork and spawn runtimes, and discovery with kept
checkpoints, resume, export in Hugging Face format and the report."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from fake_openai_server import FakeOpenAIServer, completion  # noqa: E402
from llm2.archive import Archive  # noqa: E402
from llm2.trusted import evaluate_trusted  # noqa: E402
from llm2.tasks import load_task  # noqa: E402
from llm2.sandbox.limits import LAYERS  # noqa: E402
from llm2.task_api.base import EvalSetting  # noqa: E402
from llm2.task_api.settings import SettingsError  # noqa: E402
from testkit import invoke_llm2 as llm2  # noqa: E402

DPO = load_task("preference-hf").baselines["dpo"].code


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model, pairs, reward model and questions, and a cache of its own (restored afterwards)."""
    from llm2.tasks.preference_hf.tiny import build_tiny_setup

    folder = tmp_path_factory.mktemp("tiny")
    previous = os.environ.get("LLM2_CACHE_DIR")
    os.environ["LLM2_CACHE_DIR"] = str(folder / "cache")
    yield build_tiny_setup(folder)
    if previous is None:
        os.environ.pop("LLM2_CACHE_DIR", None)
    else:
        os.environ["LLM2_CACHE_DIR"] = previous


def options(tiny, **extra) -> dict[str, str]:
    """A few steps at a high learning rate: the tiny model learns the pairs' preference in seconds."""
    return {"model": str(tiny.model), "dataset": str(tiny.dataset), "lr": "0.001", "max_steps": "8",
            "eval_size": "16", "batch_size": "8", **{k: str(v) for k, v in extra.items()}}


def cli_options(values: dict[str, str]) -> list[str]:
    return [part for key, value in values.items() for part in ("-o", f"{key}={value}")]


@pytest.fixture(scope="module")
def task():
    return load_task("preference-hf")


def test_settings_refuse_bad_values_in_one_line(task, tiny):
    cases = [({"fitness": "judge"}, "judge_model"), ({"fitness": "reward-model"}, "reward_model"),
             ({"batch_size": "0"}, "batch_size"), ({"device": "tpu"}, "device"), ({"lr": "nan"}, "lr"),
             ({"judge_api_key_env": "JUDGE"}, "judge_api_key_env"), ({"modle": "x"}, "unknown option")]
    for values, message in cases:
        with pytest.raises(SettingsError, match=message):
            task.parse_settings(values)
    with pytest.raises(ValueError, match="needs model="):
        task.prepare(task.parse_settings({"dataset": str(tiny.dataset)}))
    with pytest.raises(ValueError, match="too few"):
        task.prepare(task.parse_settings(options(tiny, eval_size=500)))
    with pytest.raises(ValueError, match="cannot read the dataset"):
        task.prepare(task.parse_settings(options(tiny, dataset=tiny.dataset.with_suffix(".csv"))))


def test_training_side_never_sees_the_held_out_pairs(task, tiny):
    from llm2.tasks.preference_hf.data import cache_paths, load_scoring_file, load_training_file

    settings = task.parse_settings(options(tiny, train_size=40))
    task.prepare(settings)
    training_path, scoring_path = cache_paths(settings)
    assert {oct(p.stat().st_mode & 0o777) for p in (training_path, scoring_path)} == {"0o600"}
    training, scoring = load_training_file(settings), load_scoring_file(settings)
    assert len(training["prompt_ids"]) == 40 and len(scoring["prompt_ids"]) == 16
    assert "prompts_json" not in training and "ref_chosen_logps" not in scoring
    def as_pairs(record: dict) -> set:
        return set(zip(map(tuple, record["prompt_ids"]), map(tuple, record["chosen_ids"])))

    assert not as_pairs(training) & as_pairs(scoring)
    data = task.training_data(settings)
    assert len(data.pairs) == 40 and data.model_path == str(tiny.model.resolve())
    # another data seed holds out other pairs
    other = task.parse_settings(options(tiny, train_size=40, data_seed=1))
    task.prepare(other)
    assert as_pairs(load_scoring_file(other)) != as_pairs(scoring)


def test_the_held_out_pairs_follow_the_world_secret_not_the_public_data_seed(task, tiny, tmp_path, monkeypatch):
    """Issue 19: which pairs are held out mixes the world secret into the data seed. The same secret gives the same
    split; the public seed alone (the draw a candidate could repeat) does not give it; another secret another."""
    import random

    from llm2.task_api import world_secret
    from llm2.tasks.preference_hf.data import read_rows, split_rows

    settings = task.parse_settings(options(tiny, train_size=40))
    held = split_rows(settings)[1]
    assert split_rows(settings)[1] == held
    rows = read_rows(settings.dataset, settings.split)
    order = list(range(len(rows)))
    random.Random(settings.data_seed).shuffle(order)
    assert [rows[i] for i in order[:settings.eval_size]] != held
    other = tmp_path / "other-secret"
    other.write_text("5e" * 32 + "\n")
    other.chmod(0o600)
    monkeypatch.setenv(world_secret.FINGERPRINT_ENV, os.environ.get(world_secret.FINGERPRINT_ENV, ""))
    monkeypatch.setenv(world_secret.SECRET_ENV, str(other))
    assert split_rows(settings)[1] != held


def test_trl_training_with_the_baseline_raises_preference_accuracy(task, tiny):
    settings = task.parse_settings(options(tiny))
    task.prepare(settings)
    reference = task.scorer(settings).reference_metrics()
    assert reference.fitness == 0.5 and reference.values["margin"] == 0.0  # every margin exactly 0, ties count half
    result = evaluate_trusted(task, DPO, EvalSetting(settings, seed=0))
    assert result.status == "ok", result.error
    # the cached reference log-probs are TRL's own: DPO's first loss is exactly log 2
    assert result.loss_trace[0] == pytest.approx(math.log(2), abs=1e-6) and len(result.loss_trace) == 8
    assert result.fitness > 0.75 and result.metrics.values["margin"] > 0
    assert result.metrics.values["reference_score"] == 0.5


def test_training_is_deterministic_and_leaves_the_workers_model_alone(task, tiny):
    from llm2.sandbox.loader import load_function

    settings = task.parse_settings(options(tiny, max_steps=3))
    task.prepare(settings)
    data = task.training_data(settings)
    before = {k: v.clone() for k, v in data.model.state_dict().items()}
    fn = load_function(DPO, task.contract)
    runs = [task.train(fn, data, EvalSetting(settings, seed)) for seed in (0, 0, 1)]
    assert all(torch.equal(before[k], v) for k, v in data.model.state_dict().items())
    assert all(torch.equal(runs[0].weights[k], runs[1].weights[k]) for k in before)
    assert any(not torch.equal(runs[0].weights[k], runs[2].weights[k]) for k in before)
    spec = task.output_spec(data)
    assert {k: (tuple(v.shape), str(v.dtype)[6:]) for k, v in runs[0].weights.items()} == \
        {k: (s.shape, s.dtype) for k, s in spec.items()}


def test_a_broken_objective_is_reported_not_raised(task, tiny):
    settings = task.parse_settings(options(tiny, max_steps=2))
    signature = ("def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
                 "reference_rejected_logps, beta):\n")
    nan_loss = signature + "    return (policy_chosen_logps - policy_rejected_logps) * float('nan')\n"
    reduced = signature + "    return -F.logsigmoid(beta * (policy_chosen_logps - policy_rejected_logps)).mean()\n"
    for code, message in ((nan_loss, "finite"), (reduced, "shape")):
        result = evaluate_trusted(task, code, EvalSetting(settings))
        assert result.status in ("invalid", "failed") and message in result.error, result.error


def test_lora_trains_an_adapter_that_exports_in_peft_format(task, tiny, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from llm2.sandbox.loader import load_function

    settings = task.parse_settings(options(tiny, lora=4, lr=0.01))
    task.prepare(settings)
    data = task.training_data(settings)
    output = task.train(load_function(DPO, task.contract), data, EvalSetting(settings))
    assert output.stop_reason is None and all("lora_" in name for name in output.weights)
    assert set(output.weights) == set(task.output_spec(data))
    metrics = task.scorer(settings).score(output)
    assert metrics.fitness > 0.5 and metrics.values["reference_score"] == 0.5
    facts = task.export_checkpoint(output, settings, tmp_path / "adapter")
    assert facts["library_name"] == "peft"
    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in output.weights.items())
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny.model), tmp_path / "adapter")
    ids = torch.tensor([[4, 5, 6, 7]])
    base = AutoModelForCausalLM.from_pretrained(tiny.model)
    assert not torch.allclose(loaded(ids).logits, base(ids).logits)  # the adapter changes the model


def test_reward_model_fitness_on_chat_pairs(task, tiny):
    """Pairs as conversations (no prompt field, as in dpo-mix-7k) go through the chat template; the reward model
    scores the policy's answers to the held-out conversations' first turns."""
    from llm2.tasks.preference_hf.data import load_scoring_file, load_training_file
    from llm2.tasks.preference_hf.tiny import chat_pairs

    chat = tiny.dataset.with_name("chat.jsonl")
    chat.write_text("".join(json.dumps(row) + "\n" for row in chat_pairs(96)))
    settings = task.parse_settings(options(tiny, dataset=chat, fitness="reward-model",
                                           reward_model=tiny.reward_model, generations=6, max_new_tokens=6))
    task.prepare(settings)
    tokenizer = task.training_data(settings).tokenizer
    first = load_training_file(settings)
    assert tokenizer.decode(first["prompt_ids"][0]).startswith("user : ")
    assert tokenizer.decode(first["prompt_ids"][0]).endswith("assistant :")
    prompts = json.loads(load_scoring_file(settings)["prompts_json"])
    assert len(prompts) == 16 and all(p[0]["role"] == "user" and len(p) == 1 for p in prompts)
    reference = task.scorer(settings).reference_metrics()
    result = evaluate_trusted(task, DPO, EvalSetting(settings))
    assert result.status == "ok", result.error
    values = result.metrics.values
    assert result.fitness == values["reward"] and math.isfinite(result.fitness)
    assert values["reference_score"] == reference.fitness == reference.values["reward"]
    assert result.fitness != reference.fitness  # other weights, other answers, another score
    assert values["pref_accuracy"] > 0.5  # the cheap numbers come with every fitness


def test_judge_ratings_are_parsed_as_mt_bench_writes_them():
    from llm2.tasks.preference_hf.judge import parse_rating

    assert parse_rating("Good answer.\nRating: [[7]]") == 7.0
    assert parse_rating("[[3]] at first, then: Rating: [[8.5]]") == 8.5
    assert parse_rating("Rating: 6") == 6.0
    assert parse_rating("Rating: [[11]]") is None and parse_rating("no verdict") is None


@pytest.mark.slow
def test_evaluate_with_the_judge_forked_and_spawned(tiny, tmp_path):
    """``llm2 evaluate`` with the judge served by a real local HTTP server, each candidate both forked from the warm
    worker and in a freshly spawned process (weights back as a file): the same training, the same scores."""
    prompt = tmp_path / "judge.txt"
    prompt.write_text("TINY-JUDGE. Question: {question}\nAnswer: {answer}\nEnd with Rating: [[N]].")
    values = options(tiny, fitness="judge", judge_model="fake-model", judge_questions=tiny.questions,
                     judge_prompt=prompt, judge_api_key_env="JUDGE_API_KEY", max_new_tokens=4, weights="file")
    out = tmp_path / "eval.json"
    with FakeOpenAIServer([], default=completion("Clear and kind.\nRating: [[7]]")) as server:
        values["judge_base_url"] = server.base_url
        llm2("evaluate", "--task", "preference-hf", *cli_options(values), "-o", "start=fork", "-o", "start=spawn",
             "--objective", "dpo", "--seeds", "1", "--workers", "1", "--timeout", "120", "--json", str(out),
             env={"JUDGE_API_KEY": "judge-secret"})
        requests = list(server.requests)
    rows = {row["setting"]["start"]: row for row in json.loads(out.read_text())["results"]}
    for row in rows.values():
        assert row["status"] == "ok", row["error"]
        assert row["fitness_mean"] == 7.0 and row["metrics"]["reference_score"]["mean"] == 7.0
        assert len(set(row["sandbox"]) & set(LAYERS)) == len(LAYERS)
    fork, spawn = rows["fork"]["metrics"], rows["spawn"]["metrics"]
    assert fork["pref_accuracy"]["mean"] > 0.5 and spawn["pref_accuracy"] == fork["pref_accuracy"]
    assert spawn["margin"]["mean"] == pytest.approx(fork["margin"]["mean"], abs=1e-9)
    questions = [json.loads(line)["turns"][0] for line in tiny.questions.read_text().splitlines()]
    asked = [r.body["messages"][0]["content"] for r in requests]
    assert all(text.startswith("TINY-JUDGE. Question: ") for text in asked)
    assert {q for q in questions if any(f"Question: {q}\n" in text for text in asked)} == set(questions)
    assert {r.headers.get("authorization") for r in requests} == {"Bearer judge-secret"}
    assert {r.body["model"] for r in requests} == {"fake-model"} and all(r.body["temperature"] == 0 for r in requests)


def test_worker_environment_names_its_gpu_and_holds_no_key(monkeypatch, tmp_path):
    """One worker per GPU sees only its own (CUDA_VISIBLE_DEVICES); a judge's key never reaches a worker."""
    from llm2.execution import gpu_environments
    from llm2.execution.handle import WorkerHandle
    from llm2.execution.scoring import ScoringSide
    from llm2.sandbox.worker import WorkerConfig

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert gpu_environments(2) == [{"CUDA_VISIBLE_DEVICES": "3"}, {"CUDA_VISIBLE_DEVICES": "5"}]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu_environments(2) == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    monkeypatch.setenv("JUDGE_API_KEY", "judge-secret")
    spec = f"{Path(__file__).with_name('example_task.py')}:RobustRegression"
    handle = WorkerHandle(WorkerConfig(spec), ScoringSide(load_task(spec)), parent_dir=str(tmp_path),
                          environment={"CUDA_VISIBLE_DEVICES": "1"})
    handle.start()
    try:
        environ = dict(item.split("=", 1) for item in
                       Path(f"/proc/{handle.pid}/environ").read_text().split("\0") if "=" in item)
    finally:
        handle.close()
    assert environ["CUDA_VISIBLE_DEVICES"] == "1" and "JUDGE_API_KEY" not in environ


def test_cuda_profile_lifts_only_the_address_space_cap():
    """The CUDA limits profile: every layer still applied, no RLIMIT_AS; the device files (none on this machine)
    are the only extra writable paths."""
    from llm2.sandbox.limits import SandboxLimits, cuda_limits

    profile = cuda_limits(SandboxLimits(timeout_s=7))
    assert not profile.cap_address_space and profile.timeout_s == 7
    assert all(path.startswith("/dev/nvidia") for path in profile.device_files)
    script = ("import json, resource, sys, tempfile, os\n"
              "from pathlib import Path\n"
              "from llm2.sandbox.limits import SandboxLimits, cuda_limits, confine, read_roots\n"
              "scratch = tempfile.mkdtemp(); os.chmod(scratch, 0o777)\n"
              "limits = cuda_limits(SandboxLimits()) if sys.argv[1] == 'cuda' else SandboxLimits()\n"
              "defences = confine(Path(scratch), limits, read_roots())\n"
              "print(json.dumps([list(defences.applied), resource.getrlimit(resource.RLIMIT_AS)[0],"
              " resource.getrlimit(resource.RLIMIT_FSIZE)[0]]))\n")
    answers = {}
    for profile_name in ("cuda", "cpu"):
        done = subprocess.run([sys.executable, "-c", script, profile_name], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        answers[profile_name] = json.loads(done.stdout)
    import resource

    from llm2.sandbox.limits import LAYERS

    assert answers["cuda"][0] == answers["cpu"][0] == list(LAYERS)
    assert answers["cuda"][1] == resource.RLIM_INFINITY and answers["cpu"][1] != resource.RLIM_INFINITY
    assert answers["cuda"][2] == answers["cpu"][2] == SandboxLimits().output_bytes


@pytest.mark.slow
def test_discover_keeps_checkpoints_resumes_exports_and_reports(tiny, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from llm2.discovery.checkpoints import checkpoint_dir, kept as kept_checkpoint

    run_dir = tmp_path / "run"
    llm2("discover", "--task", "preference-hf", *cli_options(options(tiny, max_steps=4)), "--generations", "1",
         "--population", "2", "--seeds", "1", "--workers", "1", "--keep-checkpoints", "1", "--run-dir", str(run_dir))
    llm2("discover", "--run-dir", str(run_dir), "--resume", "--generations", "2")
    with Archive.open(run_dir, readonly=True) as archive:
        proposals = [c for c in archive.candidates() if c.generation > 0]
        best = archive.best(1)[0]
        assert archive.run.config["keep_checkpoints"] == 1 and archive.run.status == "finished"
    assert [c.generation for c in proposals] == [1, 1, 2, 2] and best.fitness > 0.5
    kept = sorted(checkpoint_dir(run_dir).iterdir())
    assert kept == [kept_checkpoint(run_dir, best.id, 0)]  # only the best candidate's weights stay
    exported = llm2("export", str(run_dir), "--top", "1", "--out", str(tmp_path / "best.py"), "--checkpoints")
    folder = next((tmp_path / "best-checkpoints").iterdir())
    assert str(folder) in exported.output
    card = (folder / "README.md").read_text()
    assert best.name in card and f"{best.fitness:.4f}" in card and "def " in card and "base_model:" in card
    model = AutoModelForCausalLM.from_pretrained(folder)
    weights = load_file(str(kept[0]))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    llm2("report", str(run_dir))
    page = (run_dir / "report" / "index.html").read_text()
    assert best.name in page and "preference-hf" in page
