"""The outer discovery loop: prompts, reply parsing, feedback, generations."""
