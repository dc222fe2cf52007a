"""Moved to ``llm2.task_api.vocabulary``; this name stays for outside tasks written before the move: the same
module object."""

import sys

from llm2.task_api import vocabulary

sys.modules[__name__] = vocabulary
