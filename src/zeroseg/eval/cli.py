"""``zeroseg eval``: benchmark commands (mounted by the main CLI; also ``python -m zeroseg.eval.cli``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from zeroseg.errors import ZerosegError
from zeroseg.eval.interactive import InteractiveModel, PredictorModel, evaluate, load_interactive_dataset
from zeroseg.io import atomic_write

app = typer.Typer(help="Evaluate models on benchmarks.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Evaluate models on benchmarks."""


def build_interactive_model(
    name: str, checkpoint: Path | None, config: Path | None, device: str
) -> InteractiveModel:
    """``grabcut`` -> the classical baseline; any other name -> a hub model behind a Predictor."""
    if name.lower() == "grabcut":
        from zeroseg.models.grabcut import GrabCutModel

        return GrabCutModel()
    from zeroseg.hub import load_model
    from zeroseg.segment import Predictor

    return PredictorModel(Predictor(load_model(name, checkpoint=checkpoint, config=config, device=device)))


def results_table(results: dict[str, Any], title: str) -> Table:
    """The summary metrics (everything but the per-object list) as a two-column table."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        if key != "per_object":
            shown = "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
            table.add_row(key, shown)
    return table


@app.command()
def interactive(
    dataset: Annotated[str, typer.Option(help="grabcut, berkeley, or a folder with an index.csv (image,mask)")],
    model: Annotated[str, typer.Option(help="grabcut (classical baseline) or a registered model name")],
    checkpoint: Annotated[Path | None, typer.Option(help="weights file for the model")] = None,
    config: Annotated[Path | None, typer.Option(help="model config JSON (then --checkpoint is needed)")] = None,
    device: Annotated[str, typer.Option(help="torch device for hub models")] = "cpu",
    max_clicks: Annotated[int, typer.Option(min=1, help="clicks per object")] = 20,
    limit: Annotated[int | None, typer.Option(min=1, help="evaluate only the first N objects")] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write all results (with per-object IoUs) here")
    ] = None,
) -> None:
    """NoC@85/90, mIoU after 1 and 5 clicks and box mIoU with the RITM click protocol."""
    console = Console()
    try:
        objects = load_interactive_dataset(dataset)
        if limit is not None:
            objects = objects[:limit]
        interactive_model = build_interactive_model(model, checkpoint, config, device)
        results = evaluate(interactive_model, objects, max_clicks=max_clicks)
        if json_path is not None:
            atomic_write(json_path, json.dumps({"dataset": dataset, "model": model, **results}, indent=2))
    except ZerosegError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}")
        raise typer.Exit(err.exit_code) from None
    console.print(results_table(results, f"{model} on {dataset} ({results['n_objects']} objects)"))


if __name__ == "__main__":
    app()
