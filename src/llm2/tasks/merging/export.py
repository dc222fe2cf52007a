"""Exporting merge rules: the module llm2 writes holds the functions plus the plain helpers of
``llm2.tasks.merging.portable`` (merging state dicts, a mergekit merge method), and says how to use them."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Sequence
from typing import Any

from llm2.tasks.merging import portable


def portable_source() -> str:
    """The helpers' code, without their module docstring, for appending to an exported module."""
    source = inspect.getsource(portable)
    tree = ast.parse(source)
    first = tree.body[1] if isinstance(tree.body[0], ast.Expr) else tree.body[0]
    return "\n".join(source.splitlines()[first.lineno - 1:]) + "\n"


def merging_module_text(entries: Sequence[Any], run: Any, task: Any, file_name: str) -> str:
    from llm2.archive.export import module_text

    helpers = portable_source()
    return (module_text(list(entries), run, task, file_name).rstrip() + "\n\n\n"
            "# Helpers for using the functions above (from llm2.tasks.merging.portable)\n" + helpers)


def merge_usage(example: str, file_name: str) -> str:
    module = file_name.removesuffix(".py")
    return f'''Each function merges one parameter (mergekit's unit of work, so models larger than memory stream):

    {example}(name, base, experts)    # name str; base the seed's tensor; experts: tensors of base's shape

On two or more state dicts of one architecture (experts fine-tuned from base):
    from {module} import OBJECTIVES, merge_state_dicts
    merged = merge_state_dicts(OBJECTIVES["{example}"], base.state_dict(), [a.state_dict(), b.state_dict()])
    base.load_state_dict(merged)

As a mergekit merge method (mergekit 0.1.5; the merge must run in the process that registered it):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from {module} import OBJECTIVES, mergekit_method
    mergekit_method(OBJECTIVES["{example}"], "{example}")
    config = MergeConfiguration.model_validate({{"merge_method": "{example}", "base_model": "path/to/base",
                                                "models": [{{"model": "path/to/expert_a"}}, {{"model": "path/to/expert_b"}}],
                                                "dtype": "float32"}})
    run_merge(config, "path/to/merged", MergeOptions())

With llm2 on real Hugging Face models (streams tensors from safetensors files):
    llm2 evaluate --task merging-hf --task-option base=BASE_DIR --task-option experts=A_DIR,B_DIR \\
        --task-option eval=questions.jsonl --objective-file {file_name}:{example}'''
