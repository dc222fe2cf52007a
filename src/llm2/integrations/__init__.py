"""Bridges from llm2 objectives to other training libraries; each submodule imports its library only when used.

    from llm2.integrations.trl import ObjectiveDPOTrainer   # TRL's DPOTrainer with an llm2 objective
"""
