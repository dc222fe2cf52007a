"""``llm2 plot``: loss shapes of objectives, and reward–KL frontiers from ``llm2 evaluate --json`` files."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("plot")
def plot() -> None:
    """Draw loss shapes or a reward–KL frontier as a PNG file."""


@plot.command("objectives")
@click.argument("names", nargs=-1, required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write.")
@click.option("--beta", type=float, default=0.05, show_default=True,
              help="β passed to the losses (matters for losses that use ρ or r_c apart from x = β·ρ, e.g. ipo).")
@click.option("--range", "wide", type=(float, float), default=(-10.0, 10.0), show_default=True,
              help="The wide panel's x range (the tails).")
@click.option("--zoom", type=(float, float), default=(-0.5, 0.5), show_default=True,
              help="The zoomed panel's x range (the structure near 0).")
def objectives(names: tuple[str, ...], out: Path, beta: float, wide: tuple[float, float],
               zoom: tuple[float, float]) -> None:
    """Plot f(x) and f′(x) over x = β·ρ for catalog objectives or FILE.py:NAME; dpo is always drawn.

    Example: llm2 plot objectives discopop ipo --out shapes.png
    """
    from llm2.objectives import get_objective
    from llm2.report.plots import REFERENCE, plot_loss_shapes
    from llm2.report.shape_worker import loss_shape

    if beta <= 0:
        raise click.BadParameter(f"β must be positive, not {beta}", param_hint="--beta")
    for option, (low, high) in (("--range", wide), ("--zoom", zoom)):
        if not low < high:
            raise click.BadParameter(f"the range must go from low to high, not {low:g} to {high:g}",
                                     param_hint=option)
    wanted = [REFERENCE] + [n for n in dict.fromkeys(names) if n != REFERENCE]
    resolved = []
    for name in wanted:
        try:
            resolved.append(get_objective(name))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    shapes = [loss_shape(o.name, o.fn, beta, (wide, zoom)) for o in resolved]
    for shape in shapes:
        if shape.error:
            click.echo(f"warning: {shape.name} could not be evaluated: {shape.error}", err=True)
    plot_loss_shapes(shapes, out, beta)
    drawn = ", ".join(s.name for s in shapes if s.error is None)
    click.echo(f"wrote {out} ({drawn}; dpo is the reference)")


@plot.command("frontier")
@click.argument("eval_json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write.")
def frontier(eval_json: Path, out: Path) -> None:
    """Plot mean gold reward against KL(π‖π_ref) per objective across β, from `llm2 evaluate --json` output.

    Produce the input with several β values, e.g.
    llm2 evaluate --objective dpo --objective discopop --beta 0.01 --beta 0.05 --beta 0.5 --json eval.json
    """
    from llm2.report.frontier import frontier_from_evaluate_json, has_frontier
    from llm2.report.plots import REFERENCE, plot_frontier

    try:
        series, reference_point, notes = frontier_from_evaluate_json(eval_json)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if not series:
        raise click.ClickException(f"{eval_json} holds no successful result to plot")
    if not has_frontier(series):
        click.echo("warning: every objective was measured at a single β; a frontier needs several "
                   "(run llm2 evaluate with more --beta values)", err=True)
    if not any(s.name == REFERENCE for s in series):
        click.echo("warning: dpo is not in this file; evaluate it too to draw the reference", err=True)
    plot_frontier(series, out, reference_point)
    click.echo(f"wrote {out} ({', '.join(s.name for s in series)})")
