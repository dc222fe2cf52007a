"""The child process that measures loss shapes (see llm2.report.shapes): f(x) per pair, f′(x) by autograd.

It runs candidate code, so it only ever runs in a child process, started by ``shapes_from_code`` in an empty scratch
directory, and confines itself with the sandbox's layers (llm2.sandbox.limits.confine: no network, rlimits,
Landlock, seccomp) before it loads any candidate. The catalog's trusted objectives may use ``loss_shape``
in-process (``llm2 plot objectives``).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import torch

from llm2.candidate import load_function
from llm2.objectives.contract import PREFERENCE_CONTRACT
from llm2.report.shapes import POINTS, WIDE, ZOOM, LossShape, ShapePanel
from llm2.sandbox.limits import SandboxLimits, confine, read_roots


def grid(x_range: tuple[float, float], points: int = POINTS) -> torch.Tensor:
    return torch.linspace(x_range[0], x_range[1], points, dtype=torch.float64)


def call_at(fn: Callable[..., torch.Tensor], x: torch.Tensor, beta: float) -> torch.Tensor:
    """The loss evaluated per pair at the given x = β·ρ (reference terms zero)."""
    rho = x / beta
    zeros = torch.zeros_like(x)
    out = fn(rho / 2, -rho / 2, zeros, zeros, beta)
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"the loss returned {type(out).__name__}, not a tensor")
    if out.shape != x.shape:
        raise ValueError(f"the loss returned shape {tuple(out.shape)}, expected per-pair shape {tuple(x.shape)}")
    return out


def depends_on_batch(fn: Callable[..., torch.Tensor], x: torch.Tensor, values: torch.Tensor, beta: float) -> bool:
    """Whether a pair's loss changes when the rest of the batch changes (batch statistics)."""
    half = x.numel() // 2  # the lower half: its mean and spread differ from the whole grid's
    with torch.no_grad():
        lower = call_at(fn, x[:half].clone(), beta)
    return not torch.allclose(lower, values[:half], rtol=1e-6, atol=1e-9, equal_nan=True)


def panel(fn: Callable[..., torch.Tensor], x_range: tuple[float, float], beta: float,
          points: int = POINTS) -> tuple[ShapePanel, bool]:
    x = grid(x_range, points).requires_grad_(True)
    values = call_at(fn, x, beta)
    batch_dependent = depends_on_batch(fn, x.detach(), values.detach(), beta)
    if not batch_dependent:
        (df,) = torch.autograd.grad(values.sum(), x, allow_unused=True)
    else:
        df = per_pair_derivative(fn, x.detach(), beta)
    if df is None:  # the loss does not depend on x at all
        df = torch.zeros_like(x)
    return ShapePanel(tuple(x.detach().tolist()), tuple(finite_or_nan(values)), tuple(finite_or_nan(df))), \
        batch_dependent


def per_pair_derivative(fn: Callable[..., torch.Tensor], x: torch.Tensor, beta: float) -> torch.Tensor | None:
    """The Jacobian's diagonal ∂f_i/∂x_i, one backward pass per point (batch-dependent losses only)."""
    x = x.clone().requires_grad_(True)
    values = call_at(fn, x, beta)
    diagonal = torch.empty_like(x)
    for i in range(x.numel()):
        (row,) = torch.autograd.grad(values[i], x, retain_graph=True, allow_unused=True)
        diagonal[i] = 0.0 if row is None else row[i]
    return diagonal.detach()


def finite_or_nan(values: torch.Tensor) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values.detach().double().tolist()]


def loss_shape(name: str, fn: Callable[..., torch.Tensor], beta: float,
               ranges: Sequence[tuple[float, float]] = (WIDE, ZOOM), points: int = POINTS) -> LossShape:
    """f and f′ of ``fn`` over each range; a loss that raises gives a LossShape with ``error`` set."""
    try:
        measured = [panel(fn, r, beta, points) for r in ranges]
    except Exception as exc:  # noqa: BLE001 - a broken loss is drawn as missing, with its reason
        return LossShape(name, (), error=f"{type(exc).__name__}: {exc}")
    return LossShape(name, tuple(p for p, _ in measured), any(b for _, b in measured))


def main() -> None:
    """Child side of ``shapes_from_code``: JSON request on stdin, list of shapes on stdout."""
    torch.set_num_threads(1)
    request = json.load(sys.stdin)
    confine(Path.cwd(), SandboxLimits(timeout_s=request["timeout_s"]), read_roots())
    answer, sys.stdout = sys.stdout, sys.stderr  # whatever the candidate prints must not corrupt the answer
    ranges = [tuple(r) for r in request["ranges"]]
    shapes = []
    for name, code in request["items"]:
        try:
            fn = load_function(code, PREFERENCE_CONTRACT, filename=f"<candidate {name}>")
        except Exception as exc:  # noqa: BLE001 - CandidateError or anything the code raised
            shapes.append(LossShape(name, (), error=str(exc)))
            continue
        shapes.append(loss_shape(name, fn, request["beta"], ranges, request["points"]))
    # NaN is not JSON; the parent's json.loads accepts Python's NaN token, which json.dumps writes by default.
    answer.write(json.dumps([asdict(s) for s in shapes]))


if __name__ == "__main__":
    main()
