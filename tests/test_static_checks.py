"""The static checks: what they let through (every catalog loss, ordinary Python) and what they reject, by line."""

import ast

import pytest

from llm2.sandbox import static_check, static_error
from llm2.sandbox.static_checks import MAX_CODE_BYTES, find_entry_function
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference.contract import PREFERENCE_CONTRACT

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
    ("def margin(a, b):\n    return a - b\n\n\n", "    return -F.logsigmoid(beta * margin(rho, 0.0))\n"),
    ('"""Mentions __init__ and f_back in a docstring, which is only text."""\n', "    return rho\n"),
    ("", "    return -F.logsigmoid(beta * rho).clamp(min=0.0) + float('1e-3')\n"),
    ("", "    return rho if f'{beta:.3f}' != '{:.2f}'.format(beta) else -rho\n"),  # format specs stay allowed
])
def test_ordinary_code_passes(head, body):
    assert check(body, head) == []


@pytest.mark.parametrize("code, expected", [
    ("def loss(:\n", "line 1: syntax error"),
    ("x = 1\n", "line 1: no function takes the contract's arguments (policy_chosen_logps, policy_rejected_logps, "
                "reference_chosen_logps, reference_rejected_logps, beta): define one top-level function"),
    ("def f(a):\n    return a\n", "line 1: no function takes the contract's arguments (policy_chosen_logps, "
     "policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta), with these names in this order "
     "and nothing else; found def f(a) at line 1"),
    ("def loss(a, b, c, d):\n    return a\n", "found def loss(a, b, c, d) at line 1"),
    (SIGNATURE.replace("beta)", "beta, *rest)") + "    return beta\n", "found def loss(policy_chosen_logps, "
     "policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta, *rest) at line 1"),
    (SIGNATURE.replace("def", "async def") + "    return beta\n", "'loss' (line 1) does, but it is async"),
    (SIGNATURE.replace("def", "async def") + "    return beta\n", "line 1: async def 'loss' is not allowed"),
    (SIGNATURE + "    return beta\n\n\n" + SIGNATURE.replace("def loss", "def other") + "    return beta\n",
     "line 5: two functions take the contract's arguments: loss (line 1), other (line 5); define exactly one"),
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
    # frames: a generator's frame leads to the trainer's frame, and its builtins give back __import__
    ("", "    g = (x for x in [rho])\n    return g.gi_frame\n", "line 4: accesses 'gi_frame', an attribute of frames"),
    ("", "    g = (x for x in [rho])\n    return g.gi_frame.f_back.f_builtins\n", "line 4: accesses 'f_back'"),
    ("", "    g = (x for x in [rho])\n    return g.gi_frame.f_back.f_builtins\n", "line 4: accesses 'f_builtins'"),
    ("", "    try:\n        1 / 0\n    except ZeroDivisionError as e:\n        t = e.with_traceback(None)\n"
         "        return t.args[0].tb_frame\n", "line 7: accesses 'tb_frame'"),
    ("", "    return rho.cr_frame\n", "accesses 'cr_frame'"),
    ("", "    return rho.ag_frame\n", "accesses 'ag_frame'"),
    ("", "    return loss.co_consts\n", "accesses 'co_consts'"),
    # dunder names as strings: subscripts and lookups reach what the attribute rules guard
    ("", "    b = {}\n    return b['__import__']('os')\n", "line 4: the string '__import__' names a dunder"),
    ("", "    b = {}\n    return b.get('__builtins__')\n", "line 4: the string '__builtins__' names a dunder"),
    ("", "    key = '__glo' 'bals__'\n    return rho\n", "the string '__globals__' names a dunder"),
    ("", "    return '{0.__class__}'.format(rho)\n", "holds the dunder '__class__'"),
    ("", "    return '{0.gi_frame}'.format(rho)\n", "the format string '{0.gi_frame}' reads an attribute"),
    ("", "    name = 'f_back'\n    return rho\n", "the string 'f_back' names a frame, generator, traceback"),
    ("", "    b = {}\n    return b['_modules']\n", "line 4: subscripts with the private key '_modules'"),
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


def test_a_function_docstring_is_text_but_a_later_string_is_code():
    documented = SIGNATURE + '    """Like __init__, f_back: prose."""\n' + RHO + "    return rho\n"
    assert static_check(documented, PREFERENCE_CONTRACT) == []
    late = SIGNATURE + RHO + '    """__init__"""\n' + "    return rho\n"
    assert static_check(late, PREFERENCE_CONTRACT) == [
        "line 3: the string '__init__' names a dunder; strings naming dunders are not allowed (as keys or lookups "
        "they reach the interpreter's internals)"]


def test_the_entry_function_is_found_by_its_arguments_whatever_its_name():
    arguments = ("a", "b")
    tree = ast.parse("def helper(x):\n    return x\n\ndef anything(a, b=1.0):\n    return helper(a) * b\n")
    entry = find_entry_function(tree, arguments)
    assert isinstance(entry, ast.FunctionDef) and entry.name == "anything" and entry.lineno == 4
    assert find_entry_function(ast.parse("def f(b, a):\n    return a\n"), arguments) == (
        "no function takes the contract's arguments (a, b), with these names in this order and nothing else; "
        "found def f(b, a) at line 1")
    assert find_entry_function(ast.parse("def f(a, b, *, c):\n    return a\n"), arguments).endswith(
        "found def f(a, b, c) at line 1")
    three = "def f(a, b):\n    return a\n\ndef g(a, b):\n    return b\n\ndef h(a, b):\n    return a\n"
    assert find_entry_function(ast.parse(three), arguments) == (
        "three functions take the contract's arguments: f (line 1), g (line 4), h (line 7); define exactly one")
    nested = ast.parse("def outer(x):\n    def inner(a, b):\n        return a\n    return inner\n")
    assert find_entry_function(nested, arguments).startswith("no function takes")  # only top-level ones count
