"""Moved to ``llm2.task_api.settings``; this name stays for outside tasks written before the move: the same
module object."""

import sys

from llm2.task_api import settings

sys.modules[__name__] = settings
