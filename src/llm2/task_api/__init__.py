"""The ground floor: what every package of llm2 needs to speak about a task (the Task protocol and its records,
settings parsing, contract checks, threads, the on-disk cache, vocabularies, the world secret).

It imports nothing of llm2's upper floors, so every other package can import it without a cycle
(``tests/test_import_graph.py`` checks this).
"""
