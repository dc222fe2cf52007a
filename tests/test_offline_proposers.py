"""The offline proposers on their shared base (llm2.proposers.offline): the same proposals as before the base, at the
same seeds; registered by the task that owns them; and an advice that changes what they sample."""

from __future__ import annotations

import json

import pytest

from offline_golden import CASES, GOLDEN, proposals


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_proposals_at_the_same_seed(case):
    assert proposals(case) == json.loads(GOLDEN.read_text())[case]
