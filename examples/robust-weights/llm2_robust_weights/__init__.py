"""An llm2 task shipped as its own package: weight functions for robust linear regression."""
