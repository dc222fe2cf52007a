"""What both merging tasks share: the per-tensor contract and its unit checks, the catalog as baselines, the offline
proposer and the export notes. A merging task subclasses ``MergingTask``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llm2.tasks.defaults import TaskBase
from llm2.tasks.merging.baselines import BASELINES
from llm2.tasks.merging.contract import MERGE_CONTRACT, check_merge_contract
from llm2.tasks.merging.export import merge_usage, merging_module_text


class MergingTask(TaskBase):
    contract = MERGE_CONTRACT
    baselines = BASELINES
    reference_baseline = "task_arithmetic"
    offline_proposer = "merging-offline"
    offline_proposers = {"merging-offline": "llm2.tasks.merging.proposer:MergingOfflineProposer"}
    probe_fraction = 1.0  # a merge has no partial state to probe: train never calls its checkpoint
    collapse_share = None
    default_experts = 3  # the experts the contract is checked with when no training data is given

    def check_contract(self, fn: Callable[..., Any], data: Any = None) -> None:
        check_merge_contract(fn, len(data.experts) if data is not None else self.default_experts)

    def export_usage(self, example: str, file_name: str) -> str:
        return merge_usage(example, file_name)

    def export_module(self, entries: Any, run: Any, file_name: str) -> str:
        return merging_module_text(entries, run, self, file_name)
