"""Moved to ``llm2.task_api.base``; this name stays for outside tasks written before the move: the same
module object."""

import sys

from llm2.task_api import base

sys.modules[__name__] = base
