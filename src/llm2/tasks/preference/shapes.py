"""Loss shapes: a preference loss as a function f(x) of x = β·ρ, and its derivative f′(x).

f is measured by calling the loss itself with the reference terms zero and the policy log-probs split evenly,
chosen = ρ/2 and rejected = −ρ/2 with ρ = x/β, so β·ρ = x; f′ comes from autograd. A whole panel's grid is
one batch. Losses that use batch statistics (mean, std over the pairs) then show their shape for a batch spread
evenly over the panel, and f′ is the per-pair derivative ∂f_i/∂x_i.

Candidate code is untrusted: its shapes are computed by ``shape_entry`` inside a confined process
(``FigureContext.call_confined``); the catalog's own, trusted losses may use ``loss_shape`` directly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch

# The two default panels: the tails, and the fine structure near 0 (DiscoPOP's extrema sit near ±0.1).
WIDE = (-10.0, 10.0)
ZOOM = (-0.5, 0.5)
POINTS = 401


@dataclass(frozen=True)
class ShapePanel:
    x: tuple[float, ...]
    f: tuple[float, ...]
    df: tuple[float, ...]


@dataclass(frozen=True)
class LossShape:
    name: str
    panels: tuple[ShapePanel, ...]  # one per x range asked for, in order; empty when error is set
    batch_dependent: bool = False
    error: str | None = None


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


def shape_entry(fn: Callable[..., torch.Tensor], payload: dict) -> dict:
    """The confined process's entry: the shape of one candidate as JSON (see llm2.sandbox.confined_call)."""
    ranges = [tuple(r) for r in payload.get("ranges", (WIDE, ZOOM))]
    return asdict(loss_shape("", fn, float(payload["beta"]), ranges, int(payload.get("points", POINTS))))


def shape_from_dict(name: str, data: dict) -> LossShape:
    panels = tuple(ShapePanel(tuple(p["x"]), tuple(p["f"]), tuple(p["df"])) for p in data["panels"])
    return LossShape(name, panels, bool(data["batch_dependent"]), data["error"])


def shapes_of(call_confined: Callable[..., list], items: Sequence[tuple[str, str]], beta: float,
              ranges: Sequence[tuple[float, float]] = (WIDE, ZOOM), points: int = POINTS) -> list[LossShape]:
    """Shapes of (name, code) losses, computed in a confined process; a failure is drawn as missing, with why."""
    results = call_confined("llm2.tasks.preference.shapes:shape_entry", items,
                            {"beta": beta, "ranges": [list(r) for r in ranges], "points": points})
    return [LossShape(r.name, (), error=r.error) if r.error else shape_from_dict(r.name, r.value) for r in results]
