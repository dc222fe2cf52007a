"""``merging-hf``: merging real Hugging Face models tensor by tensor from safetensors files (``streaming.py``) and
scoring the merged model on question/answer pairs (``score.py``); the task is in ``task.py``."""
