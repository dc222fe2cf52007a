"""The synthetic preference world (DESIGN.md §4): the default inner loop; the task is in ``task.py``."""
