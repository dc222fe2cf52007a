"""Hugging Face libraries print progress bars and advice on every load, map and training step; a self-develop run
loads and trains a model every iteration, so they are silenced (errors still show)."""

from __future__ import annotations

import warnings


def quiet_hf() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    warnings.filterwarnings("ignore", message=r".*requires_grad=True to a scalar.*")
    warnings.filterwarnings("ignore", message=r"fan_in_fan_out is set to False.*")  # GPT-2's Conv1D under LoRA


def without_printer(trainer) -> None:
    """A Trainer with tqdm off prints every log line instead; the log is kept in the run's files anyway."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
