"""The preference-hf task: discovered objectives trained into Hugging Face causal LMs through TRL (task.py)."""
