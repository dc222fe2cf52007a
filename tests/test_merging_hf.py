"""merging-hf: streaming merges of Hugging Face models from safetensors files, the merged directory's format,
bounded memory, the question scorer, the exported helpers and the mergekit adapter — on tiny local models with
random weights and a tokenizer built from local text."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from llm2.sandbox.loader import load_function
from llm2.sandbox.limits import LAYERS
from llm2.task_api.base import CandidateError, EvalSetting
from llm2.tasks.merging.baselines import BASELINES, TASK_ARITHMETIC_LAMBDA
from llm2.tasks.merging.contract import MERGE_CONTRACT
from llm2.tasks.merging.export import portable_source
from llm2.tasks.merging.portable import merge_state_dicts
from llm2.tasks.merging_hf.answers import QuestionFileError, extract_answer, is_correct, load_questions
from llm2.tasks.merging_hf.score import QuestionScorer
from llm2.tasks.merging_hf.streaming import INDEX_FILE, MergeInputError, OpenModel, merge_streaming, small_files
from llm2.tasks.merging_hf.task import MergingHFSettings, MergingHFTask
from llm2.task_api.settings import SettingsError
from testkit import invoke_llm2 as llm2

REPO = Path(__file__).resolve().parents[1]
WORDS = ("question", "what", "is", "the", "sum", "of", "and", "apples", "pears", "many", "how", "answer", "total",
         "left")
# Token 0 is "7": a model whose final norm is zeroed has all-zero logits and greedily writes token 0 forever.
VOCAB = {"7": 0, "[UNK]": 1, "[PAD]": 2, "</s>": 3, **{str(d): 4 + i for i, d in enumerate((0, 1, 2, 3, 4, 5, 6, 8, 9))},
         "####": 13, ":": 14, "?": 15, **{w: 16 + i for i, w in enumerate(WORDS)}}


def task_arithmetic():
    return load_function(BASELINES["task_arithmetic"].code, MERGE_CONTRACT)


def save_tokenizer(directory: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                       pre_tokenizers.Punctuation()])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                            eos_token="</s>").save_pretrained(directory)


def tiny_llama(directory: Path, seed: int = 0, noise: float = 0.0, base: dict | None = None) -> dict:
    """A 2-layer Llama saved in Hugging Face format; with ``base`` and ``noise``, an expert: base + noise."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                         tie_word_embeddings=False, bos_token_id=None, eos_token_id=3, pad_token_id=2)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if base is not None:
        generator = torch.Generator().manual_seed(seed)
        model.load_state_dict({k: v + noise * torch.randn(v.shape, generator=generator) for k, v in base.items()})
    model.save_pretrained(directory)
    save_tokenizer(directory)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    base = tiny_llama(root / "base")
    experts = [tiny_llama(root / f"expert{i}", seed=i + 1, noise=0.02, base=base) for i in range(2)]
    questions = root / "questions.jsonl"
    rows = [{"question": f"how many apples and pears {i} ?", "answer": f"total {7 if i % 2 == 0 else 3} #### "
             f"{7 if i % 2 == 0 else 3}"} for i in range(6)]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"root": root, "base": base, "experts": experts, "questions": questions}


def read_dir(directory: Path) -> dict[str, torch.Tensor]:
    found = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            found.update({name: handle.get_tensor(name) for name in handle.keys()})  # noqa: SIM118
    return found


def test_streaming_merge_equals_the_in_memory_merge_and_loads_in_transformers(models, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = models["root"]
    report = merge_streaming(task_arithmetic(), root / "base", [root / "expert0", root / "expert1"], tmp_path / "m")
    expected = merge_state_dicts(task_arithmetic(), models["base"], models["experts"])
    written = read_dir(tmp_path / "m")
    assert set(written) == set(expected) and report.tensors == len(expected) == report.merged
    for name, tensor in expected.items():
        torch.testing.assert_close(written[name], tensor, rtol=0, atol=1e-6)
    name = "model.layers.0.mlp.up_proj.weight"  # the merge is really base + λ Σ τ, not a copy of an input
    delta = sum(e[name] - models["base"][name] for e in models["experts"])
    torch.testing.assert_close(written[name], models["base"][name] + TASK_ARITHMETIC_LAMBDA * delta)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m")  # config copied, weights readable
    torch.testing.assert_close(loaded.state_dict()["lm_head.weight"], expected["lm_head.weight"])
    assert AutoTokenizer.from_pretrained(tmp_path / "m")("how many apples")["input_ids"]


def test_small_shards_write_an_index_and_keep_the_dtype(models, tmp_path):
    root = tmp_path / "bf16"
    from transformers import AutoModelForCausalLM

    for name in ("base", "expert0"):
        model = AutoModelForCausalLM.from_pretrained(models["root"] / name).to(torch.bfloat16)
        model.save_pretrained(root / name)
    report = merge_streaming(task_arithmetic(), root / "base", [root / "expert0"], tmp_path / "m",
                             max_shard_bytes=8_000)
    assert len(report.files) > 3 and (tmp_path / "m" / INDEX_FILE).exists()
    index = json.loads((tmp_path / "m" / INDEX_FILE).read_text())
    assert set(index["weight_map"].values()) == set(report.files)
    written = read_dir(tmp_path / "m")
    assert {t.dtype for t in written.values()} == {torch.bfloat16}
    assert index["metadata"]["total_size"] == sum(t.numel() * 2 for t in written.values())
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert reloaded.config.num_hidden_layers == 2
    # the scorer's view of a child's directory (its shards and a rewritten index, the base's config) loads the same
    scorer = QuestionScorer(load_questions(models["questions"]), "loglik", device="cpu")
    view = scorer.score_dir(tmp_path / "m", config_dir=models["root"] / "base")
    save_tokenizer(tmp_path / "m")
    assert view == scorer.score_dir(tmp_path / "m") and view.fitness < 0


def test_broken_inputs_and_candidates_get_one_line_reasons(models, tmp_path):
    root = models["root"]
    with pytest.raises(MergeInputError, match="no \\*.safetensors weights"):
        merge_streaming(task_arithmetic(), tmp_path, [root / "expert0"], tmp_path / "out")
    other = tmp_path / "wide"
    tiny = {k: v for k, v in models["base"].items()}
    tiny["lm_head.weight"] = torch.zeros(3, 32)
    other.mkdir()
    save_file(tiny, str(other / "model.safetensors"))
    with pytest.raises(MergeInputError, match="'lm_head.weight' has shape \\[3, 32\\] in expert"):
        merge_streaming(task_arithmetic(), root / "base", [other], tmp_path / "out2")
    wrong = load_function("def merge(name, base, experts):\n    return base[:1]\n", MERGE_CONTRACT)
    with pytest.raises(CandidateError, match="merge returned shape \\(1, 32\\) for parameter '"):
        merge_streaming(wrong, root / "base", [root / "expert0"], tmp_path / "out3")
    assert not list((tmp_path / "out3").glob("*.safetensors"))  # nothing half-written looks like weights


def test_question_scorer_exact_match_and_loglik_on_a_known_model(models, tmp_path):
    """Zeroing the final norm makes every logit 0: greedy answers are '7 7 7' (right on the '#### 7' half), and
    each reference token has log-probability exactly -log(vocabulary)."""
    root = models["root"]
    zero_norm = load_function(
        "def merge(name, base, experts):\n"
        "    return torch.zeros_like(base) if name == 'model.norm.weight' else base\n", MERGE_CONTRACT)
    merge_streaming(zero_norm, root / "base", [root / "expert0"], tmp_path / "m")
    scorer = QuestionScorer(load_questions(models["questions"]), "exact-match", max_new_tokens=3,
                            device="cpu", reference_dir=root / "base")
    metrics = scorer.score_dir(tmp_path / "m")
    assert metrics.fitness == metrics.values["exact_match"] == 0.5
    assert metrics.values["loglik"] == pytest.approx(-math.log(len(VOCAB)), abs=1e-5)
    reference = scorer.reference_metrics()
    assert reference.values["loglik"] < 0 and reference.values["loglik"] != metrics.values["loglik"]
    cheap = QuestionScorer(load_questions(models["questions"]), "loglik", device="cpu").score_dir(tmp_path / "m")
    assert "exact_match" not in cheap.values and cheap.fitness == pytest.approx(-math.log(len(VOCAB)), abs=1e-5)


def test_answer_extraction_is_gsm8k_style(tmp_path):
    assert extract_answer("3 + 4 = 7 apples, so #### 7") == "7"
    assert extract_answer("she pays $1,200.00 in total") == "1200"
    assert extract_answer("no number here") is None
    assert is_correct("The answer is 72.", "48 + 24 = 72\n#### 72") and not is_correct("#### 71", "#### 72")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "1"}\n{"question": "q"}\n')
    with pytest.raises(QuestionFileError, match="line 2: needs an object with 'question' and 'answer'"):
        load_questions(bad)
    assert len(load_questions(bad, limit=1)) == 1


def test_task_settings_contract_and_runtime(models, tmp_path):
    task = MergingHFTask()
    root = models["root"]
    settings = task.parse_settings({"base": str(root / "base"), "experts": f"{root / 'expert0'},{root / 'expert1'}",
                                    "eval": str(models["questions"]), "fitness": "loglik"})
    assert settings.experts == (str(root / "expert0"), str(root / "expert1"))
    with pytest.raises(SettingsError, match="fitness must be one of exact-match, loglik"):
        task.parse_settings({"fitness": "bleu"})
    with pytest.raises(MergeInputError, match="needs --task-option base=MODEL"):
        task.prepare(task.default_settings())
    task.prepare(settings)
    data = task.training_data(settings)
    task.check_contract(task_arithmetic(), data)
    with pytest.raises(CandidateError, match="not a torch.Tensor"):
        task.check_contract(load_function("def merge(name, base, experts):\n    return 1.0\n", MERGE_CONTRACT),
                            data)
    runtime = task.runtime(settings)
    assert runtime.device == ("cuda" if torch.cuda.is_available() else "cpu") and runtime.output == "directory"
    weights = sum(t.numel() * 4 for t in models["base"].values())
    assert weights < runtime.output_limit_bytes < weights + 2 * 1024**2
    assert task.runtime(task.default_settings()).output_limit_bytes is None  # prepare reports the missing base
    assert task.texts_for(settings).fitness_name == "answer log-lik"
    assert task.output_spec(data) == {}
    with pytest.raises(MergeInputError, match="could not be fetched"):
        task.prepare(MergingHFSettings(base="no-such/model", experts=("x",), eval=str(models["questions"])))
    assert task.heldout_settings(settings) == []
    held = task.heldout_settings(MergingHFSettings(base="b", experts=("a",), heldout_experts=("c", "d")))
    assert held[0].experts == ("c", "d")


def test_exported_helpers_run_as_plain_code(models, tmp_path):
    """The helpers an exported module carries work without llm2: merge two state dicts with a catalog rule."""
    module = tmp_path / "merges.py"
    module.write_text("import torch\n\n" + BASELINES["ties"].code + "\n" + portable_source())
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(tmp_path)!r})
        import merges
        base = {{"w": torch.zeros(4, 5), "step": torch.tensor(3)}}
        a, b = {{"w": torch.ones(4, 5), "step": torch.tensor(9)}}, {{"w": -0.5 * torch.ones(4, 5), "step": torch.tensor(1)}}
        merged = merges.merge_state_dicts(merges.merge, base, [a, b])
        print(merged["w"].sum().item(), merged["step"].item())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          check=False, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    total, step = done.stdout.split()
    # TIES keeps each vector's top 20 % (4 of 20 entries, ties at equal magnitude keep all): the elected sign is
    # +, so only expert a's ones survive the disjoint mean
    assert float(total) == 20.0 and int(step) == 3


def test_mergekit_runs_an_llm2_rule(models, tmp_path):
    mergekit = pytest.importorskip("mergekit")
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    from llm2.tasks.merging.portable import mergekit_method

    root = models["root"]
    mergekit_method(task_arithmetic(), "llm2_test_task_arithmetic")
    config = MergeConfiguration.model_validate({
        "merge_method": "llm2_test_task_arithmetic", "base_model": str(root / "base"), "dtype": "float32",
        "models": [{"model": str(root / "expert0")}, {"model": str(root / "expert1")}]})
    run_merge(config, str(tmp_path / "mk"), MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True))
    ours = merge_state_dicts(task_arithmetic(), models["base"], models["experts"])
    theirs = read_dir(tmp_path / "mk")
    assert mergekit.__name__ == "mergekit" and set(theirs) == set(ours)
    for name, tensor in ours.items():
        torch.testing.assert_close(theirs[name], tensor, rtol=0, atol=1e-6)


MEMORY_SCRIPT = """
import json, sys, time
import torch
from llm2.sandbox.loader import load_function
from llm2.tasks.merging.baselines import BASELINES
from llm2.tasks.merging.contract import MERGE_CONTRACT
from llm2.tasks.merging_hf.streaming import merge_streaming

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))

fn = load_function(BASELINES[sys.argv[1]].code, MERGE_CONTRACT)
torch.zeros(8).sum()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak RSS (VmHWM) to the current RSS: the peak measured is the merge's own
before = status("VmRSS")
start = time.perf_counter()
report = merge_streaming(fn, sys.argv[2], sys.argv[3:5], sys.argv[5], max_shard_bytes=int(sys.argv[6]))
print(json.dumps({"before": before, "peak": status("VmHWM"), "bytes": report.bytes, "files": len(report.files),
                  "seconds": time.perf_counter() - start}))
"""


def write_random_models(root: Path, tensors: int, shape: tuple[int, int], shards: int = 4) -> int:
    """Three models (base, a, b) of ``tensors`` random float32 tensors in ``shards`` files each; their size."""
    generator = torch.Generator().manual_seed(tensors)
    per_shard = tensors // shards
    for model in ("base", "a", "b"):
        directory = root / model
        directory.mkdir(parents=True)
        weight_map = {}
        for shard in range(shards):
            file_name = f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
            part = {f"layers.{i}.weight": torch.randn(shape, generator=generator)
                    for i in range(shard * per_shard, (shard + 1) * per_shard)}
            save_file(part, str(directory / file_name))
            weight_map.update({name: file_name for name in part})
        (directory / INDEX_FILE).write_text(json.dumps({"weight_map": weight_map}))
    return tensors * shape[0] * shape[1] * 4


# A fixed mmap threshold: glibc otherwise raises it after each freed 4 MiB tensor and keeps later ones on a heap
# it trims when it likes, which moves the peak by tens of MiB from run to run; fixed, the peak is what is live.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1024**2)}


def peak_increase(root: Path, method: str) -> dict:
    """Merge root/{a,b} into root/base with ``method`` in a fresh process; its RSS before and at its peak."""
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, method, str(root / "base"), str(root / "a"), str(root / "b"),
         str(root / f"out-{method}"), str(64 * 1024**2)], capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, **MALLOC_ENV}, check=False)
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    measured["increase"] = measured["peak"] - measured["before"]
    return measured


@pytest.mark.slow
def test_memory_stays_bounded_by_a_few_tensors(tmp_path):
    """Peak memory grows with the tensors' size, not the model's: twice as many 4 MiB tensors (128 to 256 MiB
    per model, three models read) leave the peak where it was, far below one model's size."""
    shape = (1024, 1024)  # 4 MiB of float32
    tensor_bytes = shape[0] * shape[1] * 4
    small_bytes = write_random_models(tmp_path / "small", 32, shape)
    large_bytes = write_random_models(tmp_path / "large", 64, shape)
    mib = 1024**2
    small = peak_increase(tmp_path / "small", "task_arithmetic")
    large = peak_increase(tmp_path / "large", "task_arithmetic")
    ties = peak_increase(tmp_path / "large", "ties")  # more temporaries per tensor: trimming, sign election
    print(f"\npeak RSS increase, task_arithmetic: {small['increase'] / mib:.0f} MiB merging 3 x "
          f"{small_bytes / mib:.0f} MiB, {large['increase'] / mib:.0f} MiB merging 3 x {large_bytes / mib:.0f} MiB "
          f"({large['seconds']:.1f} s); ties: {ties['increase'] / mib:.0f} MiB ({ties['seconds']:.1f} s); "
          f"tensors of {tensor_bytes / mib:.0f} MiB")
    assert large["bytes"] == large_bytes and large["files"] == 4
    assert large["increase"] < small["increase"] + 4 * tensor_bytes  # not proportional to the model
    assert large["increase"] < large_bytes / 4 and ties["increase"] < large_bytes * 0.6
    merged = tmp_path / "large" / "out-task_arithmetic"
    with safe_open(str(next(merged.glob("model-00002-*"))), framework="pt") as handle:
        name = next(iter(handle.keys()))
        value = handle.get_tensor(name)
    parts = []
    for model in ("base", "a", "b"):
        index = json.loads((tmp_path / "large" / model / INDEX_FILE).read_text())["weight_map"]
        with safe_open(str(tmp_path / "large" / model / index[name]), framework="pt") as handle:
            parts.append(handle.get_tensor(name))
    torch.testing.assert_close(value, parts[0] + TASK_ARITHMETIC_LAMBDA * (parts[1] + parts[2] - 2 * parts[0]))


ZERO_NORM = ("def merge(name, base, experts):\n"
             "    return torch.zeros_like(base) if name == 'model.norm.weight' else base\n")


def test_train_merges_into_its_working_directory_and_the_scorer_reads_only_the_weights(models, tmp_path,
                                                                                      monkeypatch):
    """train() writes the merged model under ./merged (the child's scratch) and hands back no tensors; the scorer
    reads only its safetensors weights, with the base's config, generation config and tokenizer: what else a
    candidate leaves beside them (a generation config that suppresses tokens, a broken config, a pickle, an adapter
    config, an index naming another model's file) changes nothing, or is refused."""
    task = MergingHFTask()
    root = models["root"]
    settings = MergingHFSettings(base=str(root / "base"), experts=(str(root / "expert0"),),
                                 eval=str(models["questions"]), max_new_tokens=3)
    monkeypatch.chdir(tmp_path)
    output = task.train(load_function(ZERO_NORM, MERGE_CONTRACT), task.training_data(settings),
                        EvalSetting(settings, seed=0))
    merged = tmp_path / "merged"
    assert output.weights == {} and output.output_dir == "merged" and output.steps == len(models["base"])
    assert (merged / "model.safetensors").exists() and (merged / "config.json").exists()
    scorer = task.scorer(settings)
    honest = scorer.score(output)
    assert honest.fitness == honest.values["exact_match"] == 0.5  # greedy '7 7 7' (see the known-model test)
    (merged / "generation_config.json").write_text(json.dumps({"suppress_tokens": [0], "eos_token_id": 3}))
    assert scorer.score_dir(merged).values["exact_match"] == 0.0  # read as a model directory, it would count
    assert scorer.score(output) == honest
    (merged / "config.json").write_text("{not json")
    (merged / "pytorch_model.bin").write_bytes(b"not a pickle either")
    (merged / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA",
                                                            "base_model_name_or_path": str(root / "expert0")}))
    assert scorer.score(output) == honest
    elsewhere = {name: f"../{root.name}/expert0/model.safetensors" for name in models["base"]}
    (merged / INDEX_FILE).write_text(json.dumps({"weight_map": elsewhere}))
    with pytest.raises(ValueError, match="index.json names files it does not hold"):
        scorer.score(output)


def test_the_models_are_read_from_maps_opened_before_the_merge(models, tmp_path):
    """OpenModel maps the files and reads the small ones when opened: once opened, the model's directory can go
    (as a sandboxed child cannot read it) and the merge still reads every tensor and writes the config."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(models["root"] / "base", copy / "base")
    shutil.copytree(models["root"] / "expert0", copy / "expert0")
    base, expert = OpenModel(copy / "base"), OpenModel(copy / "expert0")
    shutil.rmtree(copy)
    merge_streaming(task_arithmetic(), base, [expert], tmp_path / "m")
    expected = merge_state_dicts(task_arithmetic(), models["base"], models["experts"][:1])
    written = read_dir(tmp_path / "m")
    assert all(torch.equal(written[name], tensor) for name, tensor in expected.items())
    assert json.loads((tmp_path / "m" / "config.json").read_text())["num_hidden_layers"] == 2


def settings_options(models, **extra: str) -> list[str]:
    root = models["root"]
    values = {"base": root / "base", "experts": f"{root / 'expert0'},{root / 'expert1'}",
              "eval": models["questions"], **extra}
    return [part for key, value in values.items() for part in ("-o", f"{key}={value}")]


def merged_in_process(task, models, tmp_path: Path, **options: str):
    """task_arithmetic's result on both experts, merged and scored in this process (trusted code)."""
    from llm2.trusted import evaluate_trusted

    root = models["root"]
    settings = task.parse_settings({"base": str(root / "base"), "eval": str(models["questions"]),
                                    "experts": f"{root / 'expert0'},{root / 'expert1'}", **options})
    work = tmp_path / "trusted"
    work.mkdir()
    previous = Path.cwd()
    os.chdir(work)  # train merges into ./merged
    try:
        result = evaluate_trusted(task, BASELINES["task_arithmetic"].code, EvalSetting(settings))
    finally:
        os.chdir(previous)
    assert result.status == "ok", result.error
    return result


def test_llm2_evaluate_merges_in_the_sandbox_as_in_process(models, tmp_path):
    """``llm2 evaluate`` through the real sandbox (the models sit in a directory the candidate's user cannot
    read): the same merged model, so the same scores, as a merge in this process."""
    assert models["root"].stat().st_mode & 0o077 == 0  # pytest's directories are closed to other users
    out = tmp_path / "eval.json"
    llm2("evaluate", "--task", "merging-hf", *settings_options(models, max_new_tokens="3"), "--objective",
         "task_arithmetic", "--seeds", "1", "--workers", "1", "--json", str(out))
    row = json.loads(out.read_text())["results"][0]
    assert row["status"] == "ok", row["error"]
    assert len(set(row["sandbox"]) & set(LAYERS)) == len(LAYERS)
    trusted = merged_in_process(MergingHFTask(), models, tmp_path, max_new_tokens="3")
    assert row["fitness_mean"] == trusted.fitness == trusted.metrics.values["exact_match"]
    assert row["metrics"]["loglik"]["mean"] == pytest.approx(trusted.metrics.values["loglik"], abs=1e-6)


SPAWNED_TASK = """
import dataclasses
from llm2.tasks.merging_hf.task import MergingHFTask

class SpawnedMergingHF(MergingHFTask):
    def runtime(self, settings):
        return dataclasses.replace(super().runtime(settings), start="spawn")
"""


@pytest.mark.slow
def test_a_spawned_candidate_process_merges_as_a_forked_one(models, tmp_path):
    """As on a GPU: a freshly spawned process opens the models itself, before it confines itself (as another user,
    who cannot read their directory), and merges the same model."""
    from llm2.evaluation import EvalJob
    from llm2.execution import make_executor
    from llm2.tasks import load_task

    (tmp_path / "spawned_task.py").write_text(SPAWNED_TASK)
    spec = f"{tmp_path / 'spawned_task.py'}:SpawnedMergingHF"
    task = load_task(spec)
    root = models["root"]
    settings = task.parse_settings({"base": str(root / "base"), "experts": f"{root / 'expert0'},{root / 'expert1'}",
                                    "eval": str(models["questions"]), "fitness": "loglik"})
    assert task.runtime(settings).start == "spawn"
    task.prepare(settings)
    with make_executor("local", task_spec=spec, task=task, workers=1, timeout_s=60, warm_settings=settings) as ex:
        result = ex.submit(EvalJob(BASELINES["task_arithmetic"].code, EvalSetting(settings))).result()
    assert result.status == "ok", result.error
    assert len(set(result.sandbox) & set(LAYERS)) == len(LAYERS)
    assert result.fitness == merged_in_process(task, models, tmp_path, fitness="loglik").fitness


# Candidates that leave something beside the merged weights (run with the static checks off: the sandbox's check
# of the output directory must hold on its own). Each acts once, at the first parameter.
TRICKS = {
    # the system-call filter refuses the link itself now; the output check would refuse one all the same
    "symlink": ("os.symlink('/etc/passwd', 'merged/notes.txt')", "Operation not permitted: '/etc/passwd'"),
    "script": ("open('merged/run.sh', 'w').write('#!/bin/sh\\n')",  # (chmod is refused by the system-call filter)
               "holds 'run.sh'; only files named *.safetensors, *.json"),
    "pickle": ("torch.save({'w': base}, 'merged/pytorch_model.bin')", "holds 'pytorch_model.bin'; only files"),
    "hard link": ("open('merged/a.txt', 'w').write('a'); os.link('merged/a.txt', 'merged/b.txt')",
                  "Operation not permitted: 'merged/a.txt' -> 'merged/b.txt'"),  # the filter refuses link()
    "subdirectory": ("os.makedirs('merged/sub'); open('merged/sub/a.json', 'w').write('{}')",
                     "holds 'sub', which is not a regular file"),
    "fake weights": ("open('merged/extra.safetensors', 'wb').write(b'not safetensors')",
                     "'extra.safetensors' is not a valid safetensors file"),
    "too large": ("[open(f'merged/notes{i}.txt', 'wb').write(bytes(LIMIT * 6 // 10)) for i in (1, 2)]",
                  "holds more than"),
    # outside its own root (read-only) where a mount namespace exists, else Landlock's refusal
    "outside": ("open('/tmp/llm2-escape.txt', 'w').write('out')", "Read-only file system|Permission denied"),
}


def trick(action: str, limit: int) -> str:
    return ("import os\nimport torch\n"
            f"LIMIT = {limit}\nDONE = []\n"
            "def merge(name, base, experts):\n"
            "    if not DONE and os.path.isdir('merged'):\n"
            "        DONE.append(name)\n"
            f"        {action}\n"
            "    return base + 0.3 * sum(e - base for e in experts)\n")


def test_sandbox_refuses_output_directories_with_anything_but_model_files(models, tmp_path):
    """Through the real sandbox (a warm worker, a confined child per candidate): an honest merge comes back as a
    directory, is scored and kept under its job's key; every trick is refused with its reason, and nothing it
    wrote is left in the worker's directories."""
    from llm2.evaluation import EvalJob
    from llm2.execution import make_executor

    task = MergingHFTask()
    root = models["root"]
    settings = task.parse_settings({"base": str(root / "base"), "experts": str(root / "expert0"),
                                    "eval": str(models["questions"]), "fitness": "loglik"})
    task.prepare(settings)
    limit = task.runtime(settings).output_limit_bytes
    assert 0 < limit < 2 * sum(t.numel() * 4 for t in models["base"].values()) + 2 * 1024**2
    keep = tmp_path / "keep"
    with make_executor("local", task_spec="merging-hf", task=task, workers=1, timeout_s=60, static_checks=False,
                       warm_settings=settings, keep_weights_dir=keep) as executor:
        jobs = {"honest": EvalJob(BASELINES["task_arithmetic"].code, EvalSetting(settings), key="1:0")}
        jobs.update({name: EvalJob(trick(action, limit), EvalSetting(settings), key=f"{i + 2}:0")
                     for i, (name, (action, _)) in enumerate(TRICKS.items())})
        futures = {name: executor.submit(job) for name, job in jobs.items()}
        results = {name: future.result() for name, future in futures.items()}
        leftovers = [p.name for p in Path(executor._root).rglob("*") if p.name.startswith(("output-", "merged"))]
    honest = results.pop("honest")
    assert honest.status == "ok", honest.error
    assert honest.fitness == honest.metrics.values["loglik"] < 0
    for name, result in results.items():
        assert result.status == "failed" and any(reason in result.error for reason in TRICKS[name][1].split("|")), \
            (name, result.error)
    assert not Path("/tmp/llm2-escape.txt").exists()
    assert [p.name for p in keep.iterdir()] == ["1-0"]  # the honest merge, kept as a directory
    assert sorted(p.name for p in (keep / "1-0").iterdir()) == sorted(
        ["model.safetensors", *small_files(root / "base")])
    assert leftovers == []


FILL_OUTPUT = ("import os\nimport torch\nDONE = []\n"
               "def merge(name, base, experts):\n"
               "    if not DONE and os.path.isdir('merged'):\n"
               "        DONE.append(name)\n"
               "        for i in range(2000):\n"
               "            try:\n"
               "                open(f'merged/fill{i}.json', 'wb').write(bytes(256 << 10))\n"
               "            except OSError as exc:\n"
               "                raise RuntimeError(f'stopped after {i} files: {exc.strerror}') from None\n"
               "    return base + 0.3 * sum(e - base for e in experts)\n")


def test_a_merge_that_fills_its_output_directory_stops_at_the_cap(models, tmp_path):
    """Issue 19's total-disk attack in the output directory of a task whose output is a directory: 2,000 files of
    256 KiB, each under the file-size limit, are stopped by the scratch tmpfs (4 MiB here, plus the output's room),
    where on disk they would all have been written."""
    from llm2.evaluation import EvalJob
    from llm2.execution import make_executor
    from llm2.sandbox.limits import MIB, SandboxLimits, bytes_text
    from llm2.sandbox.runner import runtime_limits

    task = MergingHFTask()
    root = models["root"]
    settings = task.parse_settings({"base": str(root / "base"), "experts": str(root / "expert0"),
                                    "eval": str(models["questions"]), "fitness": "loglik"})
    task.prepare(settings)
    limits = SandboxLimits(timeout_s=60, scratch_bytes=4 * MIB)
    with make_executor("local", task_spec="merging-hf", task=task, workers=1, timeout_s=60, static_checks=False,
                       warm_settings=settings, limits=limits) as executor:
        result = executor.submit(EvalJob(FILL_OUTPUT, EvalSetting(settings))).result()
    assert result.status == "failed" and "No space left on device" in result.error, result.error
    room = runtime_limits(limits, task.runtime(settings)).scratch_bytes
    assert f"holds at most {bytes_text(room)} in all" in result.error  # the cap stopped it, not another limit


@pytest.mark.slow
def test_discover_heldout_and_report_on_merging_hf(models, tmp_path):
    """A short offline discovery through the sandbox (four baselines, two generations of one), the held-out check on
    an unseen expert set, and the report."""
    from llm2.archive import Archive

    root = models["root"]
    run_dir = tmp_path / "run"
    llm2("discover", "--task", "merging-hf", *settings_options(models, fitness="loglik",
                                                               heldout_experts=str(root / "expert1")),
         "--proposer", "merging-offline", "--generations", "2", "--population", "1", "--seeds", "1",
         "--workers", "1", "--keep-checkpoints", "2", "--run-dir", str(run_dir))
    with Archive.open(run_dir, readonly=True) as archive:
        candidates = archive.candidates()
        best = archive.best(1, include_baselines=True)[0]
        assert archive.run.status == "finished"
    assert [c.status for c in candidates] == ["baseline"] * 4 + ["ok"] * 2, [(c.name, c.error) for c in candidates]
    assert [c.generation for c in candidates] == [0, 0, 0, 0, 1, 2]
    assert {c.name for c in candidates if c.generation == 0} == set(MergingHFTask.discovery_baselines)
    fitnesses = [c.fitness for c in candidates]
    assert all(math.isfinite(f) and f < 0 for f in fitnesses) and len(set(fitnesses)) > 2  # merges differ
    out = tmp_path / "heldout.json"
    llm2("heldout", str(run_dir), "--top", "1", "--seeds", "1", "--workers", "1", "--json", str(out))
    verdict = json.loads(out.read_text())[0]
    assert verdict["reference"] == "task_arithmetic" and verdict["settings"] == 1 and verdict["failures"] == 0
    llm2("report", str(run_dir))
    page = (run_dir / "report" / "index.html").read_text()
    assert best.name in page and "merging-hf" in page
    # the kept merged models: the two best proposals' directories only, exported in Hugging Face format
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(kept) == 2 and all((run_dir / "checkpoints" / name).is_dir() for name in kept)
    llm2("export", str(run_dir), "--top", "1", "--out", str(tmp_path / "best.py"), "--checkpoints")
    (exported,) = list((tmp_path / "best-checkpoints").iterdir())
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(exported))
    assert model.num_parameters() > 0 and "merging-hf" in (exported / "README.md").read_text()
