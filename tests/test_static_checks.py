"""The static checks: what they let through (every catalog loss, ordinary Python) and what they reject, by line."""

import pytest

from llm2.objectives import OBJECTIVES, PREFERENCE_CONTRACT
from llm2.sandbox import static_check, static_error
from llm2.sandbox.static_checks import MAX_CODE_BYTES

SIGNATURE = ("def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
             "reference_rejected_logps, beta):\n")
RHO = ("    rho = (policy_chosen_logps - policy_rejected_logps) - "
       "(reference_chosen_logps - reference_rejected_logps)\n")


def check(body: str, head: str = "") -> list[str]:
    return static_check(head + SIGNATURE + RHO + body, PREFERENCE_CONTRACT)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_catalog_loss_passes(name):
    assert static_check(OBJECTIVES[name].code, PREFERENCE_CONTRACT) == []


@pytest.mark.parametrize("head, body", [
    ("import torch\nimport torch.nn.functional as F\nimport math\n", "    return -F.logsigmoid(beta * rho)\n"),
    ("from torch.nn import functional as G\nfrom math import exp, log\n", "    return -G.logsigmoid(beta * rho)\n"),
    ("TAU = 0.05\n", "    return -F.logsigmoid(beta * rho / TAU)\n"),
    ('"""A docstring."""\n', "    return -F.logsigmoid(beta * rho)\n"),
    ("", "    def helper(x):\n        return -F.logsigmoid(x)\n    return helper(beta * rho)\n"),
    ("", "    scaled = rho.clone()\n    scaled.requires_grad_(True)\n    w = torch.zeros(3)\n"
         "    w.requires_grad = False\n    return (lambda x: torch.relu(1 - x))(beta * rho)\n"),
    ("", "    out = rho\n    for _ in range(3):\n        out = out * 0.5\n    while False:\n        pass\n"
         "    return -F.logsigmoid(beta * out)\n"),
])
def test_ordinary_code_passes(head, body):
    assert check(body, head) == []


@pytest.mark.parametrize("code, expected", [
    ("def loss(:\n", "line 1: syntax error"),
    ("x = 1\n", "line 1: no function defined; define `def loss(policy_chosen_logps"),
    ("def f(a):\n    return a\n", "the function is named 'f'; it must be named 'loss'"),
    ("def loss(a, b, c, d):\n    return a\n", "def loss(a, b, c, d) has the wrong arguments; the contract requires"),
    (SIGNATURE.replace("beta)", "beta, *rest)") + "    return beta\n", "def loss(policy_chosen_logps, "
     "policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta, *rest) has the wrong"),
    (SIGNATURE.replace("def", "async def") + "    return beta\n", "'loss' is async"),
    ("def g():\n    pass\n" + SIGNATURE + "    return beta\n", "line 3: 2 top-level functions ('g' (line 1), "
     "'loss' (line 3)); define exactly one"),
    ("print(1)\n" + SIGNATURE + "    return beta\n", "line 1: a top-level expression is not allowed"),
])
def test_structure_problems_are_named_with_their_line(code, expected):
    problems = static_check(code, PREFERENCE_CONTRACT)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("head, body, expected", [
    ("import os\n", "    return rho\n", "line 1: imports 'os', which is not allowed; allowed imports: math, torch, "
                                        "torch.nn.functional"),
    ("from os import path\n", "    return rho\n", "line 1: imports from 'os', which is not allowed"),
    ("from torch import load\n", "    return rho\n", "imports 'load' from 'torch', which is not allowed"),
    ("from . import x\n", "    return rho\n", "relative import"),
    ("from math import *\n", "    return rho\n", "'from math import *' is not allowed"),
    ("", "    import subprocess\n    return rho\n", "line 3: imports 'subprocess'"),
    ("", "    return __import__('os')\n", "line 3: uses the dunder name '__import__'"),
    ("", "    return open('x')\n", "line 3: uses 'open'"),
    ("", "    return eval('rho')\n", "uses 'eval'"),
    ("", "    exec('x = 1')\n    return rho\n", "uses 'exec'"),
    ("", "    return getattr(torch, 'sigmoid')(rho)\n", "uses 'getattr'"),
    ("", "    return globals()['rho']\n", "uses 'globals'"),
    ("", "    return rho.__class__\n", "accesses the dunder attribute '__class__'"),
    ("", "    return torch._C\n", "accesses the private attribute '_C'"),
    ("", "    return torch.os.getcwd()\n", "accesses 'torch.os'; the attribute 'os' is not allowed"),
    ("", "    torch.save(rho, 'x.pt')\n    return rho\n", "the attribute 'save' is not allowed"),
    ("", "    torch.manual_seed(0)\n    return rho\n", "the attribute 'manual_seed' is not allowed"),
    ("", "    rho.numpy().tofile('x')\n    return rho\n", "the attribute 'tofile' is not allowed"),
    ("", "    torch.sigmoid = torch.relu\n    return rho\n", "line 3: assigns to 'torch.sigmoid': changing a module"),
    ("", "    F.logsigmoid = torch.relu\n    return rho\n", "assigns to 'F.logsigmoid'"),
    ("", "    del math.pi\n    return rho\n", "deletes 'math.pi'"),
    ("", "    t = torch.nn\n    t.functional = None\n    return rho\n", "assigns to 't.functional'"),
    ("", "    global F\n    return rho\n", "'global F' is not allowed"),
    ("", "    class Box:\n        pass\n    return rho\n", "defines the class 'Box'"),
    ("", "    @torch.no_grad\n    def f(x):\n        return x\n    return rho\n", "has a decorator"),
])
def test_escapes_are_named_with_their_line(head, body, expected):
    problems = check(body, head)
    assert any(expected in p for p in problems), problems


def test_oversized_and_unparseable_code_get_a_message_not_a_traceback():
    assert "the limit is" in static_check("#" * (MAX_CODE_BYTES + 1), PREFERENCE_CONTRACT)[0]
    nested = SIGNATURE + "    return " + "(" * 5000 + "rho" + ")" * 5000 + "\n"
    assert static_check(nested, PREFERENCE_CONTRACT)  # too deep: reported, not raised
    assert static_check("x = 1\0\n", PREFERENCE_CONTRACT)


def test_problems_are_sorted_by_line_and_joined_for_the_proposer():
    problems = static_check("import os\n" + SIGNATURE + "    return open('x')\nimport sys\n", PREFERENCE_CONTRACT)
    lines = [int(p.split(":")[0].removeprefix("line ")) for p in problems]
    assert lines == sorted(lines) and len(problems) >= 3
    assert static_error(problems).startswith("static check: line 1: imports 'os'")
