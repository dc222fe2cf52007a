"""Moved to ``llm2.task_api.cache``; this name stays for outside tasks written before the move: the same
module object."""

import sys

from llm2.task_api import cache

sys.modules[__name__] = cache
