"""Moved to ``llm2.tasks.preference.trl`` (it is the preference tasks' own); this name stays for users' training
scripts (``from llm2.integrations.trl import ObjectiveDPOTrainer``): the same module."""

import sys

from llm2.tasks.preference import trl

sys.modules[__name__] = trl
