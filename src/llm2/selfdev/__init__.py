"""Self-developing: the algorithm factory refined on its own algorithms (``llm2 self-develop``).

After Ishibashi et al. (2024), "Can Large Language Models Invent Algorithms to Improve Themselves?": each
iteration the factory (a causal LM) writes many algorithms at a high temperature, they are evaluated, and the
factory is trained with DPO on (prompt, chosen, rejected) pairs from its own results (chosen: the top few percent,
rejected: the bottom tenth); the refined factory writes the next iteration's. With ``--factory-objective`` the
factory is trained by any llm2 preference objective instead of DPO, a discovered one included: the loop of the
DiscoPOP paper's last section, a discovered loss training the model that discovers (LLM²).

Modules, in the order a run uses them:

- ``plan``: the run's plan (factory, sizes, temperatures, pair shares, training recipe), kept in DIR/selfdev.
- ``default_factory`` and ``corpus``: the offline default factory, a tiny GPT-2 trained on programs of the task's
  own offline proposer, built once and cached.
- ``factory``: loading a factory (a checkpoint directory or any Hugging Face causal LM) and sampling from it.
- ``prompting``: what the factory is asked (the discovery's own prompt for real models).
- ``sampling``: an iteration's samples into the archive (requests and candidates), resumable slot by slot.
- ``reading``: a completion as a candidate (a JSON reply or bare code).
- ``outcomes``: an iteration's results, statistics and preference pairs.
- ``training``: the DPO step through TRL (LoRA with PEFT, or full fine-tuning for tiny factories).
- ``files``: the run's own files and their atomic writes; ``develop``: the loop and its resume.
- ``proposer``: a factory as an ordinary proposer (``--proposer factory``).
"""
