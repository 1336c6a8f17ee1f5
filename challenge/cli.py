"""The `challenge` command: a thin layer over library functions.

Heavy imports (torch, transformers, mlflow) happen inside the commands so `--help` is quick.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from challenge.errors import ChallengeError
from challenge.progress import say, set_quiet
from tracks import TRACKS

app = typer.Typer(
    help="From ABAW-style challenge data to a validated leaderboard file.\n\n"
    "Main job:  challenge track emi --data DIR --tune",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
features_app = typer.Typer(help="The shared feature store: extract once, reuse in every track and trial.", no_args_is_help=True)
app.add_typer(features_app, name="features")

TrackName = Enum("TrackName", {name: name for name in TRACKS}, type=str)
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
StoreOption = Annotated[Optional[Path], typer.Option("--store", help="Feature store root (default $CHALLENGE_FEATURE_STORE or ~/.cache/challenge/features).")]


@app.command("demo-data")
def demo_data(
    directory: Annotated[Path, typer.Argument(help="Where to write the dataset.")],
    track: Annotated[TrackName, typer.Option(help="Which official layout to write.")] = TrackName.emi,
    seed: Annotated[int, typer.Option(help="Random seed of the generator.")] = 0,
    train: Annotated[Optional[int], typer.Option(help="Training clips (EMI) or videos (Aff-Wild2).")] = None,
    valid: Annotated[Optional[int], typer.Option(help="Validation clips or videos.")] = None,
    test: Annotated[Optional[int], typer.Option(help="Test clips or videos.")] = None,
    quiet: Quiet = False,
):
    """Write a small dataset in a track's official layout, with learnable labels.

    Examples:

        challenge demo-data demo_data/emi --track emi

        challenge demo-data demo_data/affwild --track expr --train 8 --seed 1
    """
    set_quiet(quiet)
    spec = TRACKS[track.value]
    sizes = {k: v for k, v in {"train": train, "valid": valid, "test": test}.items() if v is not None}
    counts = spec.write_demo(directory, seed=seed, **sizes)
    say(f"wrote {spec.title} demo data to {directory}: {counts}")


@features_app.command("extract")
def features_extract(
    data: Annotated[Path, typer.Option(help="Dataset root in the track's official layout.")],
    track: Annotated[TrackName, typer.Option(help="Track whose reader lists the media.")],
    extractor: Annotated[str, typer.Option(help="wav2vec2, mae, provided or egemaps.")],
    model: Annotated[Optional[str], typer.Option(help="Hub id or local save_pretrained directory.")] = None,
    layer: Annotated[Optional[int], typer.Option(help="wav2vec2 hidden state index (-1 = last).")] = None,
    kind: Annotated[Optional[str], typer.Option(help="provided: wav2vec2 or vit (the organisers' folder).")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")] = "auto",
    store: StoreOption = None,
    quiet: Quiet = False,
):
    """Fill the shared feature store; entries already there are reused.

    Examples:

        challenge features extract --data demo_data/emi --track emi --extractor egemaps

        challenge features extract --data /data/hume --track emi --extractor wav2vec2 --model /models/wav2vec2-base
    """
    set_quiet(quiet)
    from challenge.features import FeatureStore, make_extractor
    from challenge.features.extract import extract

    samples = TRACKS[track.value].read(data)
    options = {"model": model, "layer": layer, "kind": kind}
    config = make_extractor(extractor, **{k: v for k, v in options.items() if v is not None})
    report = extract(config, samples, FeatureStore(store), device=device)
    typer.echo(f"{config.name}: {report.computed} computed, {report.cached} cached, {len(report.missing_media)} without media")


@features_app.command("ls")
def features_ls(store: StoreOption = None):
    """Show what the feature store holds: one line per extractor configuration.

    Example:

        challenge features ls
    """
    from rich.console import Console
    from rich.table import Table

    from challenge.features.store import FeatureStore

    feature_store = FeatureStore(store)
    table = Table(title=f"feature store {feature_store.root}")
    for column in ("extractor", "key", "entries", "size", "settings"):
        table.add_column(column)
    for group in feature_store.groups():
        config = group.config.get("config", {})
        settings = ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("name", "schema_version"))
        table.add_row(config.get("name", "?"), group.folder.name.rsplit("-", 1)[-1], str(group.entries), _size(group.bytes), settings)
    Console().print(table)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main() -> None:
    try:
        app()
    except ChallengeError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted: finished entries, trials and runs are kept; run the same command to resume.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
