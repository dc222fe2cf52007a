"""``llm2 self-develop``: the factory writes algorithms, they are evaluated in the sandbox, the factory is trained
with DPO (real TRL) on pairs from its own results, and the run can be read, reported and resumed like any other."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm2.archive import Archive
from llm2.cli import main
from llm2.selfdev.outcomes import SampleOutcome, build_pairs, iteration_stats
from llm2.selfdev.plan import SelfDevPlan, TrainingRecipe, temperature_schedule
from llm2.selfdev.reading import read_completion
from testkit import LLM2, assert_untouched, start_in_session, wait_for_archive
from tiny_preference_task import TINY_TASK

# A default factory small enough to build in seconds (it is cached in the tests' cache directory after the first).
TINY_FACTORY = {"programs": 48, "chains": 4, "steps": 150, "vocab_size": 1024, "layers": 2, "width": 64}
TINY_OPTIONS = [item for key, value in TINY_FACTORY.items() for item in ("--factory-option", f"{key}={value}")]
# Preference losses are longer programs: a wider model and a line-sized vocabulary write them validly (~20 s build).
PREFERENCE_OPTIONS = [item for key, value in {"programs": 96, "chains": 8, "steps": 300, "vocab_size": 2048,
                                              "layers": 2, "width": 128}.items()
                      for item in ("--factory-option", f"{key}={value}")]
# The tiny factory writes valid code about two times in three at these temperatures (a third at 1.2).
FAST_CLASSIFICATION = ["--task", "classification", "-o", "epochs=3", "--seeds", "1", "--workers", "2",
                       "--temperature", "0.8:0.6"]


# --- plan, reading, pairs and statistics (no model, no evaluation) -------------------------------------------------
def test_temperature_schedule_forms_and_errors():
    assert temperature_schedule("1.2:0.85", 3) == (1.2, 1.0833, 0.9667, 0.85)
    assert temperature_schedule("1,0.9", 1) == (1.0, 0.9)
    assert temperature_schedule("0.7", 2) == (0.7, 0.7, 0.7)
    assert temperature_schedule("1.2:0.85", 0) == (1.2,)
    for bad, why in (("1.2:x", "START:END"), ("1,0.9", "need 4"), ("-1", "0 or more")):
        with pytest.raises(ValueError, match=why):
            temperature_schedule(bad, 3)


def test_plan_round_trips_and_refuses_bad_values():
    plan = SelfDevPlan(iterations=1, samples=8, temperatures=(1.2, 0.85), recipe=TrainingRecipe(objective="discopop"))
    assert SelfDevPlan.from_dict(json.loads(plan.to_json())) == plan
    with pytest.raises(ValueError, match="2 temperatures"):
        SelfDevPlan(iterations=1, temperatures=(1.0,))
    with pytest.raises(ValueError, match="chosen-top"):
        SelfDevPlan(iterations=0, temperatures=(1.0,), chosen_top=0.9)
    with pytest.raises(ValueError, match="SFT term goes with TRL's DPO"):
        TrainingRecipe(objective="discopop", sft_weight=1.0)
    full = TrainingRecipe().resolved(parameters=1_000_000)
    lora = TrainingRecipe(beta=0.05).resolved(parameters=7_000_000_000)
    assert (full.tuning, full.beta) == ("full", 0.1)
    assert (lora.tuning, lora.beta, lora.learning_rate) == ("lora", 0.05, 1e-4)  # given values win


def test_completion_is_read_as_a_json_reply_or_as_bare_code():
    code = "def loss(logits, targets):\n    return F.cross_entropy(logits, targets, reduction='none')\n"
    bare = read_completion(code)
    assert (bare.name, bare.code, bare.error) == ("loss", code, None)
    reply = read_completion("Sure.\n" + json.dumps({"thought": "plain CE", "name": "My CE", "code": code}))
    assert (reply.thought, reply.name, reply.code) == ("plain CE", "my_ce", code)
    fenced = read_completion("Here:\n```python\n" + code + "```\nDone.")
    assert fenced.code == code
    nothing = read_completion("    # llm2-spec: {\"temperature\": 1.0")
    assert nothing.code == "" and "no function" in nothing.error


def outcome(slot: int, fitness: float | None, text: str | None = None, status: str = "ok",
            duplicate_of: int | None = None) -> SampleOutcome:
    return SampleOutcome(slot, 100 + slot, f"s{slot}", text if text is not None else f"def f{slot}(): pass",
                         status, fitness is not None, fitness, duplicate_of, None)


def test_pairs_take_the_top_and_bottom_shares_of_the_iteration():
    outcomes = [outcome(i, f) for i, f in enumerate([0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.05])]
    outcomes += [outcome(10, None, status="invalid"), outcome(11, None, text="", status="invalid")]
    pairs = build_pairs(outcomes, chosen_top=0.2, rejected_bottom=0.3, rejected_pool="valid")
    assert [o.fitness for o in pairs.chosen] == [0.9, 0.8]  # 20 % of 10 valid
    assert [o.fitness for o in pairs.rejected] == [0.05, 0.1, 0.2]  # worst first
    assert len(pairs.pairs) == 6 and all(good.fitness > bad.fitness for good, bad in pairs.pairs)
    assert pairs.pairs[0] == (pairs.chosen[0], pairs.rejected[0])  # the best against the worst first
    # failures rank lowest when the pool is "all"; an empty completion is never a pair's text
    everything = build_pairs(outcomes, chosen_top=0.1, rejected_bottom=0.1, rejected_pool="all")
    assert [o.slot for o in everything.rejected] == [10, 9]
    capped = build_pairs(outcomes, chosen_top=0.2, rejected_bottom=0.3, rejected_pool="valid", max_pairs=3)
    assert len(capped.pairs) == 3 and {g.slot for g, _ in capped.pairs} == {1, 5}  # the cap keeps both chosen
    # equal fitness or equal text makes no pair
    ties = [outcome(0, 0.5), outcome(1, 0.5), outcome(2, 0.5, text="def f0(): pass")]
    assert build_pairs(ties, 0.4, 0.4).pairs == ()


def test_statistics_count_duplicates_with_their_original():
    outcomes = [outcome(0, 0.6), outcome(1, 0.6, status="duplicate", duplicate_of=100), outcome(2, 0.2),
                outcome(3, None, status="invalid"), outcome(4, 1.0)]
    stats = iteration_stats(2, 0.9, outcomes, reference=None)
    assert (stats.samples, stats.valid, stats.duplicates, stats.distinct_valid) == (5, 4, 1, 3)
    assert stats.valid_share == pytest.approx(0.8)
    assert stats.mean == pytest.approx(statistics.fmean([0.6, 0.6, 0.2, 1.0]))
    assert stats.median == pytest.approx(0.6) and stats.top_decile == pytest.approx(1.0)
    assert (stats.best_name, stats.best_fitness, stats.above_reference) == ("s4", 1.0, None)


# --- the default factory and its DPO step (real transformers and TRL) ----------------------------------------------
@pytest.fixture(scope="module")
def tiny_factory(tmp_path_factory):
    from llm2.selfdev.default_factory import TinyFactoryConfig, materialize
    from llm2.tasks import load_task

    directory = tmp_path_factory.mktemp("factory") / "factory"
    materialize(load_task("classification"), TinyFactoryConfig(**TINY_FACTORY), directory)
    return directory


def test_default_factory_is_cached_and_samples_reproducibly(tiny_factory):
    from llm2.selfdev.default_factory import TinyFactoryConfig, cache_path, ensure_default_factory
    from llm2.selfdev.factory import Factory
    from llm2.tasks import load_task

    task = load_task("classification")
    cached = cache_path(task, TinyFactoryConfig(**TINY_FACTORY))
    stamp = cached.stat().st_mtime_ns
    assert ensure_default_factory(task, TinyFactoryConfig(**TINY_FACTORY)) == cached
    assert cached.stat().st_mtime_ns == stamp  # not built again
    assert cache_path(task, TinyFactoryConfig(**{**TINY_FACTORY, "steps": 61})) != cached
    assert oct(cached.stat().st_mode & 0o777) == "0o600"
    factory = Factory.load(tiny_factory)
    assert factory.manifest.format == "plain" and "def loss(logits, targets)" in factory.manifest.prompt
    prompt = factory.prompt_for(())
    first = factory.sample(prompt, 8, 1.0, seed=3, max_new_tokens=96)
    again = factory.sample(prompt, 8, 1.0, seed=3, max_new_tokens=96)
    other = factory.sample(prompt, 8, 1.0, seed=4, max_new_tokens=96)
    assert [s.text for s in first] == [s.text for s in again] != [s.text for s in other]
    assert sum(read_completion(s.text).code.startswith("def loss(logits, targets):") for s in first) >= 4
    # as an ordinary proposer: replies the discovery loop parses, reproducible per request seed
    from llm2.discovery.parse import parse_reply
    from llm2.proposers import ProposalRequest, ProposerError, make_proposer

    proposer = make_proposer("factory", model=str(tiny_factory))
    request = ProposalRequest(messages=(), history=(), temperature=0.6, seed=5)
    reply = proposer.propose(request)
    assert reply.text == proposer.propose(request).text and reply.completion_tokens > 0
    if read_completion(reply.text).code:
        assert parse_reply(reply.text).code.startswith("def ")
    with pytest.raises(ProposerError, match="needs a model"):
        make_proposer("factory")


def sequence_logps(factory_dir: Path, prompt_text: str, completions: list[str]) -> list[float]:
    """Summed log-probabilities of each completion (and the end token) after the prompt."""
    import torch

    from llm2.selfdev.factory import Factory

    factory = Factory.load(factory_dir)
    tokenizer, model = factory.tokenizer, factory.model
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    values = []
    for text in completions:
        ids = prompt_ids + tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1]
        logps = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1)
        values.append(float(logps[len(prompt_ids) - 1:].sum()))
    return values


@pytest.mark.parametrize("tuning,objective,sft_weight", [("full", None, 0.0), ("full", None, None),
                                                         ("lora", "discopop", None)])
def test_dpo_step_moves_the_factory_towards_its_chosen(tiny_factory, tmp_path, tuning, objective, sft_weight):
    from llm2.selfdev.factory import Factory, Manifest
    from llm2.selfdev.training import TRAINING_LOG, train_factory

    factory = Factory.load(tiny_factory)
    prompt = factory.prompt_for(())
    texts = [s.text for s in factory.sample(prompt, 8, 1.0, seed=11, max_new_tokens=96)]
    chosen, rejected = texts[:2], texts[2:6]
    pairs = [(good, bad) for good in chosen for bad in rejected if good != bad]
    recipe = TrainingRecipe(tuning=tuning, objective=objective, epochs=6,
                            learning_rate=5e-3 if tuning == "lora" else None, beta=0.1, sft_weight=sft_weight)
    target = tmp_path / "iteration-1" / "factory"
    result = train_factory(tiny_factory, prompt, pairs, recipe, seed=0, target=target,
                           adapter_target=tmp_path / "iteration-1" / "adapter", scratch=tmp_path / "scratch")
    assert result.recipe.tuning == tuning and result.recipe.objective == objective and result.steps > 0
    log = json.loads((target / TRAINING_LOG).read_text())
    assert log["result"]["pairs"] == len(pairs) and any("loss" in entry for entry in log["log"])
    effective = sft_weight if sft_weight is not None else (0.0 if objective else 1.0)  # the defaults
    assert log["result"]["recipe"]["sft_weight"] == effective
    if objective is None:  # plain DPO starts at log 2; with the chosen NLL added, above it
        assert (result.first_loss > math.log(2) + 0.5) == bool(effective)
    before = sequence_logps(tiny_factory, prompt.text, chosen + rejected)
    after = sequence_logps(target, prompt.text, chosen + rejected)
    margin = lambda v: statistics.fmean(v[:2]) - statistics.fmean(v[2:])
    assert margin(after) > margin(before) + 0.5
    manifest = Manifest.read(target)
    if tuning == "lora":  # the new factory is the old one plus an adapter, referred to relatively
        assert manifest.base.startswith("..") or Path(manifest.base).is_absolute()
        assert manifest.adapters == ("../adapter",) and (tmp_path / "iteration-1" / "adapter").is_dir()
    else:
        assert manifest.base is None and any(target.glob("*.safetensors"))


# --- the command, end to end ---------------------------------------------------------------------------------------
def archive_of(run_dir: Path):
    with Archive.open(run_dir, readonly=True) as archive:
        return archive.candidates(), archive.requests(), archive.run_events(), archive.run


def test_self_develop_on_classification_then_leaderboard_heldout_and_report(tmp_path):
    run_dir = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(main, ["self-develop", *FAST_CLASSIFICATION, *TINY_OPTIONS, "--iterations", "1",
                                  "--samples", "8", "--chosen-top", "0.25", "--rejected-bottom", "0.25",
                                  "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    candidates, requests, events, run = archive_of(run_dir)
    assert run.status == "finished" and run.proposer == "factory"
    assert run.config["generations"] == 2 and run.config["population"] == 8  # a DiscoveryConfig others can read
    by_generation = {g: [c for c in candidates if c.generation == g] for g in (0, 1, 2)}
    assert all(c.status == "baseline" for c in by_generation[0]) and len(by_generation[0]) == 7
    for k in (0, 1):
        samples = by_generation[k + 1]
        asked = [r for r in requests if r.request["iteration"] == k]
        assert len(samples) == 8 and all(c.proposer == "factory" for c in samples)
        assert sorted(r.request["slot"] for r in asked) == list(range(8))
        assert {r.request["temperature"] for r in asked} == {(0.8, 0.6)[k]}
        assert {r.candidate_id for r in asked} == {c.id for c in samples}  # each sample has its exact request
        assert all(r.request["messages"][0]["content"].startswith("# llm2 task: classification") for r in asked)
    assert not any(c.status == "pending" for c in candidates)
    files = run_dir / "selfdev"
    # the statistics agree with the archive: each valid sample's fitness (a duplicate's is its original's)
    by_id = {c.id: c for c in candidates}
    for k in (0, 1):
        stats = json.loads((files / f"iteration-{k}" / "stats.json").read_text())
        scored = []
        for c in by_generation[k + 1]:
            source = by_id[c.duplicate_of] if c.status == "duplicate" else c
            if source.status in ("ok", "baseline"):
                scored.append(source.fitness)
        assert stats["samples"] == 8 and stats["valid"] == len(scored)
        if scored:
            assert stats["mean"] == pytest.approx(statistics.fmean(scored))
            assert stats["best_fitness"] == pytest.approx(max(scored))
        pairs = [json.loads(line) for line in (files / f"iteration-{k}" / "pairs.jsonl").read_text().splitlines()]
        # rejected: the worst, failures first (their fitness is None)
        assert all(p["rejected_fitness"] is None or p["chosen_fitness"] > p["rejected_fitness"] for p in pairs)
        assert stats["pairs"] == len(pairs)
    trained = [e.detail for e in events if e.kind == "selfdev" and e.detail["step"] == "trained"]
    assert json.loads((files / "iteration-0" / "stats.json").read_text())["pairs"] > 0
    assert len(trained) == 1 and (files / "iteration-1" / "factory" / "training.json").is_file()

    board = runner.invoke(main, ["leaderboard", str(run_dir), "--json", "--all"])
    assert board.exit_code == 0, board.output
    rows = json.loads(board.output)["rows"]
    assert {r["generation"] for r in rows} == {0, 1, 2}
    verdicts = tmp_path / "heldout.json"
    held = runner.invoke(main, ["heldout", str(run_dir), "--top", "1", "--seeds", "1", "--workers", "2",
                                "--json", str(verdicts)])
    assert held.exit_code == 0, held.output
    verdict = json.loads(verdicts.read_text())[0]
    assert verdict["name"].startswith("loss_i") and verdict["reference"] == "cross_entropy"
    assert verdict["settings"] > 0

    from llm2.report.build import build_report

    page = build_report(run_dir).read_text()
    assert "Self-develop: the factory" in page and (run_dir / "report" / "selfdev_fitness.png").is_file()


def test_control_run_never_trains_and_bad_input_gets_one_line(tmp_path):
    runner = CliRunner()
    run_dir = tmp_path / "control"
    result = runner.invoke(main, ["self-develop", *FAST_CLASSIFICATION, *TINY_OPTIONS, "--iterations", "1",
                                  "--samples", "3", "--no-refine", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert not (run_dir / "selfdev" / "iteration-1" / "factory").exists()
    _, requests, events, _ = archive_of(run_dir)
    assert {r.request["model"] for r in requests} == {str(run_dir / "selfdev" / "iteration-0" / "factory")}
    assert not any(e.kind == "selfdev" and e.detail["step"] == "trained" for e in events)
    assert (run_dir / "selfdev" / "iteration-1" / "stats.json").is_file()

    cases = [
        (["--factory", str(tmp_path / "nowhere")], "no factory at"),
        (["--temperature", "1.2:x"], "START:END"),
        (["--factory-objective", "no_such_loss"], "unknown objective"),
        (["--factory-option", "steps=0"], "steps must be at least 1"),
        (["--factory-option", "depth=3"], "unknown option"),
    ]
    for extra, message in cases:
        bad = runner.invoke(main, ["self-develop", "--task", "classification", "--run-dir", str(tmp_path / "x"),
                                   *extra])
        assert bad.exit_code != 0 and message in bad.output, (extra, bad.output)
        assert "Traceback" not in bad.output and not (tmp_path / "x").exists()
    resumed = runner.invoke(main, ["self-develop", "--run-dir", str(run_dir), "--resume", "--samples", "9"])
    assert resumed.exit_code == 2 and "keeps its plan; drop --samples" in resumed.output
    nothing = runner.invoke(main, ["self-develop", "--run-dir", str(tmp_path / "empty"), "--resume"])
    assert nothing.exit_code == 2 and "holds no self-develop run" in nothing.output


def test_sigkill_in_the_dpo_step_then_resume_repeats_no_evaluation_and_loses_no_sample(tmp_path):
    run_dir = tmp_path / "run"
    options = [*FAST_CLASSIFICATION, *TINY_OPTIONS, "--iterations", "1", "--samples", "6", "--chosen-top", "0.5",
               "--rejected-bottom", "0.5", "--rejected-pool", "all", "--epochs", "200"]
    first = start_in_session([*LLM2, "self-develop", *options, "--run-dir", str(run_dir)])
    wait_for_archive(run_dir, first, lambda archive: any(e.kind == "selfdev" and e.detail["step"] == "training"
                                                         for e in archive.run_events()), "its DPO step")
    time.sleep(1.0)  # inside the trainer by now
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert not (run_dir / "selfdev" / "iteration-1" / "factory").exists()  # killed before the step ended
    before, requests_before, _, _ = archive_of(run_dir)
    stats_before = (run_dir / "selfdev" / "iteration-0" / "stats.json").read_text()

    second = subprocess.run([*LLM2, "self-develop", "--run-dir", str(run_dir), "--resume"], check=False,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    after, requests_after, events, run = archive_of(run_dir)
    assert run.status == "finished"
    assert_untouched(before, after)  # nothing evaluated again: every result untouched
    assert [r.id for r in requests_after if r.request["iteration"] == 0] == [r.id for r in requests_before]
    assert (run_dir / "selfdev" / "iteration-0" / "stats.json").read_text() == stats_before
    for k in (0, 1):  # every slot sampled once, none lost
        slots = sorted(r.request["slot"] for r in requests_after if r.request["iteration"] == k)
        assert slots == list(range(6))
        assert len([c for c in after if c.generation == k + 1]) == 6
    assert not any(c.status == "pending" for c in after)
    steps = [e.detail["step"] for e in events if e.kind == "selfdev"]
    assert steps.count("training") == 2 and steps.count("trained") == 1  # cut once, then done once
    assert (run_dir / "selfdev" / "iteration-1" / "factory" / "training.json").is_file()
    assert any(e.kind == "resumed" for e in events)


@pytest.mark.slow
def test_preference_synthetic_with_a_discovered_objective_training_the_factory(tmp_path):
    """LLM²: the factory of preference losses trained with the DiscoPOP loss (through ObjectiveDPOTrainer)."""
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "self-develop", "--task", TINY_TASK, *PREFERENCE_OPTIONS, "--iterations",
        "1", "--samples", "4",
        "--temperature", "0.7",
        "--seeds", "1", "--workers", "2", "--chosen-top", "0.5", "--rejected-bottom", "0.5", "--rejected-pool",
        "all", "--factory-objective", "discopop", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    candidates, requests, _, _ = archive_of(run_dir)
    assert len([c for c in candidates if c.generation in (1, 2)]) == 8
    assert all("policy_chosen_logps" in r.request["messages"][0]["content"] for r in requests)
    stats = json.loads((run_dir / "selfdev" / "iteration-0" / "stats.json").read_text())
    assert stats["valid"] > 0 and stats["pairs"] > 0
    log = json.loads((run_dir / "selfdev" / "iteration-1" / "factory" / "training.json").read_text())
    recipe = log["result"]["recipe"]
    assert (recipe["objective"], recipe["sft_weight"], recipe["tuning"]) == ("discopop", 0.0, "full")
    assert log["result"]["steps"] > 0 and all(math.isfinite(e["loss"]) for e in log["log"] if "loss" in e)


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    """Any Hugging Face causal LM as the seed factory: here a tiny random Llama with a BPE tokenizer learnt from
    local text and a chat template (nothing can be downloaded)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from llm2.tasks import load_task

    task = load_task("classification")
    texts = [b.code for b in task.baselines.values()] + [task.texts.description, task.contract.description]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<eos>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<eos>")
    tokenizer.chat_template = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}<eos>{% endfor %}"
                               "{% if add_generation_prompt %}[assistant] {% endif %}")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    directory = tmp_path_factory.mktemp("chat") / "model"
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_a_chat_model_as_factory_is_asked_the_discovery_prompt_and_gets_a_lora_chain(chat_model, tmp_path):
    from llm2.proposers.base import Message
    from llm2.selfdev.factory import Factory, Manifest, check_factory, seed_checkpoint
    from llm2.selfdev.training import train_factory

    check_factory(str(chat_model))
    seed = tmp_path / "iteration-0" / "factory"
    seed_checkpoint(str(chat_model), seed)
    assert Manifest.read(seed).format == "chat" and Manifest.read(seed).base == str(chat_model.resolve())
    factory = Factory.load(seed)
    assert factory.asks_with_messages
    messages = (Message("system", "You write classification losses."), Message("user", "Write one."))
    prompt = factory.prompt_for(messages)
    assert prompt.text is None and prompt.messages == messages  # the chat template renders them
    samples = factory.sample(prompt, 2, 1.0, seed=0, max_new_tokens=8)
    assert len(samples) == 2 and all(s.completion_tokens <= 8 for s in samples)
    code = "def loss(logits, targets):\n    return F.cross_entropy(logits, targets, reduction='none')\n"
    reply = json.dumps({"thought": "CE", "name": "ce", "code": code})
    pairs = [(reply, "no idea"), (reply, "def loss(:")]
    target = tmp_path / "iteration-1" / "factory"
    result = train_factory(seed, prompt, pairs, TrainingRecipe(epochs=1), seed=0, target=target,
                           adapter_target=tmp_path / "iteration-1" / "adapter", scratch=tmp_path / "scratch")
    assert result.recipe.tuning == "full"  # auto: a tiny model is tuned in full
    lora_target = tmp_path / "iteration-2" / "factory"
    lora = train_factory(target, prompt, pairs, TrainingRecipe(tuning="lora", epochs=1), seed=0,
                         target=lora_target, adapter_target=tmp_path / "iteration-2" / "adapter",
                         scratch=tmp_path / "scratch")
    assert lora.recipe.tuning == "lora" and lora.recipe.beta == 0.01  # the paper's β
    manifest = Manifest.read(lora_target)
    assert manifest.format == "chat" and manifest.base == "../../iteration-1/factory"
    assert manifest.adapters == ("../adapter",)
    assert Factory.load(lora_target).sample(prompt, 1, 0.0, seed=0, max_new_tokens=4)  # base + adapter loads
