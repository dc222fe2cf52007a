"""llm2: a language model invents better ways to train language models."""

__version__ = "0.1.0"
