"""The old name of ``llm2.discovery.fanout``, kept because code outside the package (bench/) imports it."""

from llm2.discovery.fanout import (CandidateOutcome, SeedFanout, combine, evaluate_grid, fan_out,  # noqa: F401
                                   record_outcome)
