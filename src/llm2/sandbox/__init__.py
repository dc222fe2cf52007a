"""Run untrusted candidate code: static checks, then a forked child under OS limits that hands back only tensors.

    from llm2.sandbox import static_check
    problems = static_check(code, contract)   # [] when fine
"""

from llm2.sandbox.static_checks import static_check, static_error

__all__ = ["static_check", "static_error"]
