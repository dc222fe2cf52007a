"""``merging-synthetic``: the Self-Developing paper's model-merging task as a CPU miniature (a seed model and expert
fine-tunes of it on symbol-sequence skills); the task is in ``task.py``, the world in ``world.py``."""
