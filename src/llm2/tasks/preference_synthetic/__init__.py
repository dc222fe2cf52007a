"""The synthetic preference world: the default inner loop, a miniature of the DiscoPOP paper's IMDb experiment; the task is in ``task.py``."""
