"""``preference-hf``: discovered preference objectives trained into a real Hugging Face causal LM through TRL's
DPOTrainer, on a real preference dataset, scored by held-out preference accuracy, a reward model or an LLM judge.

    llm2 evaluate --task preference-hf -o model=Qwen/Qwen2.5-0.5B-Instruct -o dataset=pairs.jsonl --objective dpo
    llm2 discover --task preference-hf -o model=... -o dataset=... -o fitness=judge -o judge_model=... \\
        -o judge_questions=question.jsonl --keep-checkpoints 3
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from llm2.task_api.base import EvalSetting, MetricColumn, Runtime, TaskTexts, TensorSpec, TrainOutput
from llm2.tasks.preference.common import EXPERTISE, PreferenceTask
from llm2.tasks.preference_hf.settings import PreferenceHFSettings
from llm2.temp_dirs import temporary_dir

HELDOUT_BETAS = (0.025, 0.1)
# fitness setting -> (its name in tables, what it measures, for the proposer)
FITNESS_TEXTS = {
    "pref-accuracy": ("held-out preference accuracy",
                      ("the share of held-out pairs whose chosen completion gets the higher implicit reward\n"
                      "beta * log(pi / pi_ref) under the trained policy (0 to 1; a tie counts half, so the untrained\n"
                      "start scores 0.5); higher is better")),
    "reward-model": ("reward-model score",
                     ("the mean score a reward model gives the trained policy's greedy answers to held-out prompts;\n"
                     "higher is better")),
    "judge": ("judge score",
              ("the mean rating, 1 to 10, an LLM judge gives the trained policy's greedy answers to a fixed set of\n"
              "questions (single-answer grading, as in MT-Bench); higher is better")),
}
FILE_TRANSFER_BYTES = 200 * 10**6  # weights larger than this come back as a file, not through the pipe
GIB = 1 << 30


def _name(path_or_id: str | None) -> str:
    return Path(path_or_id.rstrip("/")).name if path_or_id else "-"


class PreferenceHFTask(PreferenceTask):
    name = "preference-hf"
    settings_type = PreferenceHFSettings
    texts = TaskTexts(
        kind="preference optimization loss",
        description=(
            "The task: offline preference optimization of a real language model, as in RLHF from human preference\n"
            "pairs. A pretrained chat model (the policy) starts from its supervised weights, which also serve as the\n"
            "frozen reference, and is trained with TRL's DPOTrainer on pairs of completions for the same prompt, one\n"
            "preferred (chosen) over the other (rejected). Your loss replaces DPO's: it receives the summed\n"
            "log-probabilities of each completion under the policy and the reference and returns one loss per\n"
            "pair; training minimises their mean with AdamW for a fixed number of steps."),
        fitness=("the score of the trained policy named in the settings: the share of held-out pairs whose\n"
                 "chosen completion gets the higher implicit reward beta * log(pi / pi_ref) (pref-accuracy, 0 to\n"
                 "1), the mean score a reward model gives its answers to held-out prompts (reward-model), or the\n"
                 "mean 1-10 rating an LLM judge gives its answers to a fixed set of questions (judge); higher is\n"
                 "better"),
        fitness_name="score",
        expertise=EXPERTISE,
    )
    discovery_baselines = ("dpo",)  # each baseline is a full training run of a real model
    metric_columns = (
        MetricColumn("pref_accuracy", "pref. accuracy", 3, better="higher"),
        MetricColumn("margin", "reward margin", 3, better="higher"),
        MetricColumn("reference_score", "untrained", 3),
    )

    def __init__(self) -> None:
        self._scorers: dict[PreferenceHFSettings, Any] = {}
        self._runtimes: dict[PreferenceHFSettings, Runtime] = {}

    # -- how candidates run -------------------------------------------------------------------------------------
    def runtime(self, settings: PreferenceHFSettings) -> Runtime:
        """A GPU when there is one: a freshly spawned process per candidate, one worker per GPU, weights back as a
        file. On the CPU: forked from the warm worker, weights through the pipe unless the model is large.
        Asked per candidate: kept once the model is found (before ``prepare`` downloads it, it may not be yet)."""
        if settings in self._runtimes:
            return self._runtimes[settings]
        from llm2.tasks.preference_hf.models import device_for, weight_bytes

        device = device_for(settings)
        start = settings.start if settings.start != "auto" else ("spawn" if device == "cuda" else "fork")
        model_dir = self._model_dir(settings)
        stored = weight_bytes(model_dir)
        transfer = settings.weights
        if transfer == "auto":
            transfer = "file" if device == "cuda" or stored > FILE_TRANSFER_BYTES else "pipe"
        # float32 on the CPU may double what is stored in bf16; full fine-tuning holds the weights, their
        # gradients and AdamW's two moments (16 bytes a parameter at 2 stored bytes a parameter, and more)
        output_limit = 2 * stored + 64 * (1 << 20)
        memory = (4 if settings.lora else 12) * stored + 2 * GIB
        gpus = 0
        if device == "cuda":
            import torch

            gpus = torch.cuda.device_count()
        runtime = Runtime(start=start, device=device, gpus=gpus, output=transfer, output_limit_bytes=output_limit,
                          memory_bytes=memory)
        if model_dir:
            self._runtimes[settings] = runtime
        return runtime

    @staticmethod
    def _model_dir(settings: PreferenceHFSettings) -> str:
        """The model's local directory, when it is one or the hub's cache already holds it; else ""."""
        if not settings.model:
            return ""
        if Path(settings.model).expanduser().is_dir():
            return str(Path(settings.model).expanduser())
        try:
            from huggingface_hub import snapshot_download

            from llm2.tasks.preference_hf.models import HUB_PATTERNS

            return snapshot_download(settings.model, allow_patterns=HUB_PATTERNS, local_files_only=True)
        except Exception:
            return ""

    # -- trusted main process ----------------------------------------------------------------------------------
    def prepare(self, settings: PreferenceHFSettings) -> None:
        from llm2.tasks.preference_hf.data import prepare_data

        prepare_data(settings)
        if settings.fitness == "judge":  # a missing file should stop the run now, not at the first score
            from llm2.tasks.preference_hf.judge import load_prompt, load_questions

            load_questions(settings.judge_questions)
            load_prompt(settings.judge_prompt)

    # -- training side -----------------------------------------------------------------------------------------
    def training_data(self, settings: PreferenceHFSettings) -> Any:
        from llm2.tasks.preference_hf.train import load_training

        return load_training(settings)

    def output_spec(self, data: Any) -> dict[str, TensorSpec]:
        return data.spec

    def train(self, fn: Callable[..., Any], data: Any, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        from llm2.tasks.preference_hf.train import train_policy

        return train_policy(fn, data, setting, self.probe_fraction, checkpoint)

    def warm_up(self, settings: PreferenceHFSettings, data: Any) -> None:
        """One step of the reference baseline on one pair, on the CPU, in a directory of its own."""
        from llm2.sandbox.loader import load_function
        from llm2.tasks.preference_hf.train import warm_up

        baseline = self.baselines[self.reference_baseline]
        fn = load_function(baseline.code, self.contract, filename=f"<baseline {baseline.name}>")
        self.check_contract(fn, data)
        with temporary_dir("llm2-warm-up-") as workdir:
            warm_up(fn, data, settings, Path(workdir))

    # -- scoring side ------------------------------------------------------------------------------------------
    def scorer(self, settings: PreferenceHFSettings) -> Any:
        from llm2.tasks.preference_hf.score import PreferenceHFScorer

        if settings not in self._scorers:
            self._scorers[settings] = PreferenceHFScorer(settings)
        return self._scorers[settings]

    # -- texts, held-out suite, export -------------------------------------------------------------------------
    def texts_for(self, settings: PreferenceHFSettings) -> TaskTexts:
        name, text = FITNESS_TEXTS[settings.fitness]
        return replace(self.texts, fitness=text, fitness_name=name)

    def setting_text(self, settings: PreferenceHFSettings) -> str:
        budget = f"{settings.max_steps} steps" if settings.max_steps else f"{settings.epochs:g} epochs"
        fitness = settings.fitness + (f" by {settings.judge_model}" if settings.fitness == "judge" else "")
        tuning = f", LoRA rank {settings.lora}" if settings.lora else ""
        return (f"{_name(settings.model)} on {_name(settings.dataset)}, β = {settings.beta:g}, lr {settings.lr:g}, "
                f"{budget}{tuning}, fitness {fitness}")

    def heldout_settings(self, settings: PreferenceHFSettings) -> list[PreferenceHFSettings]:
        """Each differs in one knob: β, then which pairs are held out."""
        return ([replace(settings, beta=b) for b in HELDOUT_BETAS if b != settings.beta]
                + [replace(settings, data_seed=settings.data_seed + 1)])

    def export_checkpoint(self, output: TrainOutput, settings: PreferenceHFSettings,
                          out_dir: Path) -> dict[str, Any]:
        from llm2.tasks.preference_hf.export import write_checkpoint

        return write_checkpoint(dict(output.weights), settings, Path(out_dir))
