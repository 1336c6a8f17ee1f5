"""The `challenge` command: a thin layer over library functions.

Heavy imports (torch, transformers, mlflow) happen inside the commands so `--help` is quick.
"""

from __future__ import annotations

import inspect
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from challenge.app.cli_options import with_schema_options
from challenge.config import MODEL_FLAGS
from challenge.errors import ChallengeError
from challenge.progress import console, say, set_quiet
from challenge.registry import entry_point_names, get_track, track_names

app = typer.Typer(
    help="From ABAW-style challenge data to a validated leaderboard file.\n\nMain job:  challenge track emi --data DIR --tune",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
features_app = typer.Typer(help="The shared feature store: extract once, reuse in every track and trial.", no_args_is_help=True)
app.add_typer(features_app, name="features")


def _known_track(name: str) -> str:
    if name not in track_names():
        raise typer.BadParameter(f"unknown track {name!r}; choose one of: {', '.join(track_names())}")
    return name


# tracks come from the registry (entry points); their modules load only when one is used
TRACKS_HELP = "A registered track: " + ", ".join(track_names()) + "."
TrackName = Annotated[str, typer.Argument(help=TRACKS_HELP, show_default=False, callback=_known_track)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
DataOption = Annotated[Optional[Path], typer.Option(help="Dataset root in the track's official layout.")]
AudioModelOption = Annotated[Optional[str], typer.Option(help="wav2vec2 save_pretrained folder, weights file, or hf:HUB_ID.")]
VisualModelOption = Annotated[Optional[str], typer.Option(help="MAE ViT save_pretrained folder, weights file, or hf:HUB_ID.")]
TrialsOption = Annotated[Optional[int], typer.Option(help="Finished trials the study should hold (a rerun resumes).")]
TimeoutOption = Annotated[Optional[float], typer.Option(help="Stop tuning after this many seconds.")]
StorageOption = Annotated[Optional[str], typer.Option(help="Optuna storage URL (default sqlite:///optuna/studies.db).")]
TrackingOption = Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default sqlite:///mlflow/mlflow.db).")]
OutOption = Annotated[Optional[Path], typer.Option(help="Output folder (default submissions/<track>/<run-id>/).")]
EpochsOption = Annotated[Optional[int], typer.Option(help="Epoch budget of torch heads.")]
DeviceOption = Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")]
SkipMissingOption = Annotated[bool, typer.Option("--skip-missing", help="Leave out clips without media (counted).")]
ConfigOption = Annotated[Optional[Path], typer.Option(help="YAML file of defaults; flags override it.")]
StoreOption = Annotated[
    Optional[Path], typer.Option("--store", help="Feature store root (default $CHALLENGE_FEATURE_STORE or ~/.cache/challenge/features).")
]


@app.command("demo-data")
def demo_data(
    directory: Annotated[Path, typer.Argument(help="Where to write the dataset.")],
    track: Annotated[str, typer.Option(help="Which track's official layout to write. " + TRACKS_HELP, callback=_known_track)] = "emi",
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
    from challenge.synthetic.stand_ins import write_stand_ins

    spec = get_track(track)
    sizes = {k: v for k, v in {"train": train, "valid": valid, "test": test}.items() if v is not None}
    counts = spec.write_demo(directory, seed=seed, **sizes)
    # the smiles demo writes two corpora (a/, b/) side by side; every other track one root
    roots = [p for p in sorted(Path(directory).iterdir()) if (p / "splits.csv").exists()] or [Path(directory)]
    models = write_stand_ins(directory, roots)
    say(f"wrote {spec.title} demo data to {directory}: {counts}")
    say(
        f"random-weight stand-in models (no download possible): {', '.join(str(p) for p in models.values())}; "
        f"named in {', '.join(str(r / 'challenge.yaml') for r in roots)}"
    )


@features_app.command("extract")
def features_extract(
    data: Annotated[Path, typer.Option(help="Dataset root in the track's official layout.")],
    track: Annotated[str, typer.Option(help="Track whose reader lists the media. " + TRACKS_HELP, callback=_known_track)],
    extractor: Annotated[str, typer.Option(help="A registered extractor: " + ", ".join(entry_point_names("challenge.extractors")) + ".")],
    audio_model: AudioModelOption = None,
    visual_model: VisualModelOption = None,
    social_mae_model: Annotated[
        Optional[str], typer.Option(help="Social-MAE folder or the authors' .pth (--extractor social-mae).")
    ] = None,
    text_model: Annotated[Optional[str], typer.Option(help="sentence-transformers folder or hf:HUB_ID (--extractor text).")] = None,
    layer: Annotated[Optional[int], typer.Option(help="wav2vec2 hidden state index (-1 = last).")] = None,
    kind: Annotated[Optional[str], typer.Option(help="provided: wav2vec2 or vit (the organisers' folder).")] = None,
    device: DeviceOption = "auto",
    skip_missing: SkipMissingOption = False,
    store: StoreOption = None,
    workers: Annotated[
        Optional[int], typer.Option(min=1, help="Processes, each extracting one shard (default 1, or one per device in --device).")
    ] = None,
    shard: Annotated[
        Optional[str], typer.Option(help="I/N: extract only shard I of N (0-based), e.g. from a cluster array job; shards share one store.")
    ] = None,
    quiet: Quiet = False,
):
    """Fill the shared feature store; entries already there are reused, damaged ones computed again.
    Any number of processes and machines can fill one store: each entry is computed once and
    written atomically.

    Examples:

        challenge features extract --data demo_data/emi --track emi --extractor egemaps

        challenge features extract --data /data/hume --track emi --extractor wav2vec2 --audio-model /models/wav2vec2-base

        challenge features extract --data /data/hume --track emi --extractor wav2vec2 --device cuda:0,cuda:1

        challenge features extract --data /data/hume --track emi --extractor mae --shard $SLURM_ARRAY_TASK_ID/16
    """
    set_quiet(quiet)
    flags = {"audio_model": audio_model, "visual_model": visual_model, "social_mae_model": social_mae_model, "text_model": text_model}
    chosen = next((flags[flag] for flag, declared in MODEL_FLAGS.items() if declared.extractor == extractor), None)
    job = {
        "track": track,
        "data": str(data),
        "extractor": extractor,
        "options": {"model": chosen, "layer": layer, "kind": kind},
        "store": str(store) if store else None,
        "skip_missing": skip_missing,
    }
    devices = device.split(",")
    count = workers or len(devices)
    if count > 1:
        if shard is not None:
            raise ChallengeError("--workers splits the samples into shards itself: pass --workers or --shard, not both.")
        from challenge.app.workers import extraction_workers

        say(f"starting {count} extraction workers (shards 0..{count - 1} of {count}, devices {', '.join(devices)})")
        raise typer.Exit(extraction_workers(job, count, devices))
    from challenge.features.extract import extract_for_track

    config, report, skipped = extract_for_track(
        track, data, extractor, job["options"], job["store"], device, _shard(shard) if shard is not None else None, skip_missing
    )
    if skipped:
        say(f"[yellow]skipped {len(skipped)} sample(s) without media:[/]\n" + "\n".join(f"  - {s}" for s in skipped[:10]))
    typer.echo(f"{config.name}: {report.computed} computed, {report.cached} cached, {len(report.missing_media)} without media")


@app.command("transcribe")
def transcribe_command(
    data: Annotated[Path, typer.Option(help="Dataset root in the track's official layout.")],
    asr_model: Annotated[
        str,
        typer.Option(help="Whisper folder (save_pretrained layout) or hf:HUB_ID, e.g. /models/whisper-small or hf:openai/whisper-small."),
    ],
    track: Annotated[str, typer.Option(help="Track whose reader lists the clips. " + TRACKS_HELP, callback=_known_track)] = "emi",
    out: Annotated[
        Optional[Path], typer.Option(help="Folder of <clip>.txt files (default DATA/transcripts, where --features text reads).")
    ] = None,
    language: Annotated[
        Optional[str], typer.Option(help="Spoken language for a multilingual Whisper (e.g. en); default: detected.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Transcribe again the clips this command transcribed before (never a team's own file).")
    ] = False,
    device: DeviceOption = "auto",
    skip_missing: SkipMissingOption = False,
    quiet: Quiet = False,
):
    """Transcribe each clip's voice with a local Whisper checkpoint into DATA/transcripts/<clip>.txt,
    which `--features text` embeds. Clips that already have a transcript (the team's, or a
    killed run's) are kept, so the same command resumes.

    Examples:

        challenge transcribe --data /data/hume --asr-model /models/whisper-small --language en

        challenge track emi --data /data/hume --features wav2vec2,mae,text --head clip-transformer
    """
    set_quiet(quiet)
    from challenge.features.base import resolve_device
    from challenge.features.speech_recognition import transcribe

    samples = get_track(track).read(Path(data), on_missing="skip" if skip_missing else "error")
    folder = out or Path(data) / "transcripts"
    report = transcribe(samples, asr_model, folder, resolve_device(device or "auto"), language, overwrite)
    without = f", {len(report.no_audio)} without audio" if report.no_audio else ""
    typer.echo(f"transcripts: {len(report.written)} written, {len(report.kept)} already there (kept){without}: {folder}")


@features_app.command("verify")
def features_verify(
    repair: Annotated[bool, typer.Option("--repair", help="Compute damaged entries again from their media.")] = False,
    device: DeviceOption = "auto",
    store: StoreOption = None,
    quiet: Quiet = False,
):
    """Read every entry of the (writable) store in full and check it against the checksum
    recorded when it was written; exits 1 when damage is found and not repaired.

    Examples:

        challenge features verify

        challenge features verify --repair
    """
    set_quiet(quiet)
    from challenge.errors import list_offenders
    from challenge.features import FeatureStore
    from challenge.features.verify import verify_store

    feature_store = FeatureStore(store)
    report = verify_store(feature_store, repair=repair, device=device)
    typer.echo(
        f"{feature_store.root}: {report.checked} entries checked, {report.sound} sound, {len(report.damaged)} damaged"
        + (f", {report.unverified} without a checksum (written before checksums; structure checked only)" if report.unverified else "")
    )
    if report.damaged:
        typer.echo(list_offenders(report.damaged))
    if repair and report.damaged:
        typer.echo(f"repaired {report.repaired}; removed without recomputing {len(report.removed)}")
        if report.removed:
            typer.echo(list_offenders(report.removed) + "\nRun `challenge features extract` on their data to compute them.")
    if report.damaged and (not repair or report.removed):
        if not repair:
            typer.echo("Run `challenge features verify --repair` to compute the damaged entries again.")
        raise typer.Exit(1)


@features_app.command("ls")
def features_ls(store: StoreOption = None):
    """Show what the feature store holds: one line per extractor configuration.

    Example:

        challenge features ls
    """
    from rich.console import Console
    from rich.table import Table

    from challenge.stores.feature_store import FeatureStore

    feature_store = FeatureStore(store)
    table = Table(title=f"feature store {feature_store.root}")
    for column in ("extractor", "key", "entries", "size", "columns", "settings"):
        table.add_column(column)
    for group in feature_store.groups():
        config = group.config.get("config", {})
        settings = ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("name", "schema_version"))
        names = group.config.get("columns")
        columns = f"{len(names)} named: {', '.join(names[:2])}, ..." if names else "unnamed"
        table.add_row(
            config.get("name", "?"), group.folder.name.rsplit("-", 1)[-1], str(group.entries), _size(group.bytes), columns, settings
        )
    Console().print(table)


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise ChallengeError(f"--shard {text}: expected I/N with 0 <= I < N, for example 0/4.")
    return index, count


def _model_options() -> list[inspect.Parameter]:
    """--audio-model and --visual-model: the one spelling of the model option, in every command."""
    return [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[Optional[str], typer.Option(help=declared.help, show_default=False)],
        )
        for name, declared in MODEL_FLAGS.items()
    ]


def _run_options(names: list[str] | None = None, sections: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """The run config's settings as options (challenge.app.cli_options); heads and feature sets
    listed from their registries."""
    from challenge.app.cli_options import schema_parameters, section_parameters
    from challenge.config import RunConfig, feature_choices
    from challenge.heads import head_names

    registries = {
        "head": " Registered: " + ", ".join(head_names()) + ".",
        "features": " Comma-separated; registered: " + ", ".join(feature_choices()) + ".",
    }
    chosen = [n for n in (names or RunConfig.model_fields) if n != "track"]
    parameters = schema_parameters(RunConfig, chosen, extra_help=registries) + _model_options()
    for section in sections:
        parameters += section_parameters(RunConfig, section)
    return parameters


def _head_params(pairs: list[str]) -> dict:
    import yaml

    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ChallengeError(f"--head-param {pair!r}: expected NAME=VALUE, for example --head-param encoder=fer.")
        values[name.strip()] = yaml.safe_load(value)
    return values


def track_command(
    track: TrackName,
    config: ConfigOption = None,
    finetune: Annotated[
        bool,
        typer.Option(
            "--finetune",
            help="Fine-tune the backbone end to end with the track's end-to-end head "
            "(EMI: wav2vec2-lstm; EXPR, AU, VA: vit-frames); same as --head NAME.",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="With --tune: run K local worker processes on one study (--trials counts the study's trials, all workers together)."
        ),
    ] = 1,
    head_param: Annotated[
        Optional[list[str]],
        typer.Option(
            help="NAME=VALUE: a head parameter the run fixes (YAML value; repeatable), "
            "e.g. --head-param encoder=fer, --head-param loss=ccc. Same as head_params in --config."
        ),
    ] = None,
    quiet: Quiet = False,
    **settings,
):
    """Train (and with --tune, tune) a head, score it on validation, write and validate the submission.

    Every setting of the run config is an option here and a key of --config YAML; the smiles
    and fine-tuning sections have their own panels.

    Examples:

        challenge track emi --data /data/hume --tune --trials 30

        challenge track emi --data /data/hume --features wav2vec2,mae --audio-model /models/wav2vec2-base --head lstm

        challenge track emi --data /data/hume --finetune --audio-model /models/wav2vec2-base --finetune-trainable-blocks 6

        challenge track emi --data demo_data/emi --features egemaps --head lightgbm --shuffle-labels

        challenge track expr --data /data/affwild2 --features mae,wav2vec2 --visual-model /models/mae-face.pth --tune

        challenge track ce --data /data/affwild2 --zero-shot

        challenge track smile-laugh --data demo_data/smiles/a --eval-data demo_data/smiles/b

        challenge track smile-intensity --data demo_data/smiles/a --subtle merge
    """
    set_quiet(quiet)
    from challenge.run.runner import run

    spec = get_track(track)
    extra = {"head_params": _head_params(head_param)} if head_param else {}
    if finetune:
        extra["head"] = _finetune_head(spec, settings.get("head"))
    resolved = _run_config(config, spec, settings, extra)
    if workers > 1:
        raise typer.Exit(_start_workers(resolved, workers))
    from challenge.run.finish import result_lines

    result = run(spec, resolved)
    for line in result_lines(spec, result, resolved.shuffle_labels):
        typer.echo(line)
    if result.submission:
        typer.echo(f"submission: {result.submission} (validated)")
    from challenge.stores.tracking import DEFAULT_TRACKING_URI

    store = resolved.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI  # where the run was logged
    typer.echo(
        f"MLflow run {result.run_id}; browse with: "
        + (f"{store}" if store.startswith("http") else f"mlflow ui --backend-store-uri {store}")
    )


def _run_config(config: Optional[Path], spec, settings: dict, extra: dict | None = None):
    """The one way every run command (track, ensemble, multitask) resolves its settings: the
    options given, over --config YAML, over the track's defaults; then the dataset check."""
    from challenge.app.cli_options import schema_flags
    from challenge.config import RunConfig, load_config

    resolved = load_config(config, {"track": spec.name, **schema_flags(settings, RunConfig), **(extra or {})}, spec)
    if not resolved.data:
        raise ChallengeError("no dataset: pass --data DIR (or `data:` in --config).")
    return resolved


def _finetune_head(spec, head: str | None) -> str:
    """--finetune names the track's end-to-end head; a different --head beside it is a contradiction."""
    if not spec.finetune_head:
        raise ChallengeError(
            f"--finetune: the {spec.name} track names no end-to-end head; pass --head with one of the heads that read media."
        )
    if head not in (None, spec.finetune_head):
        raise ChallengeError(f"--finetune picks the head {spec.finetune_head}; --head {head} says otherwise: pass one of them.")
    return spec.finetune_head


def _start_workers(resolved, workers: int) -> int:
    """--workers K: K processes on one study; returns the exit code of the pool."""
    if not resolved.tune:
        raise ChallengeError("--workers K shares one Optuna study between K processes: add --tune.")
    from challenge.app.workers import tuning_workers

    indices = (
        f"worker indices {resolved.worker}..{resolved.worker + workers - 1}"
        if resolved.worker is not None
        else "each claims a free worker index from the study"
    )
    say(f"starting {workers} workers on one study ({indices})")
    return tuning_workers(resolved, workers)


def _track_sections() -> tuple[str, ...]:
    from challenge.config import track_sections

    return (*track_sections(), "finetune")


app.command("track")(with_schema_options(track_command, _run_options(sections=_track_sections())))


class SplitName(str, Enum):
    folds = "folds"
    background = "background"
    both = "both"


def ensemble_command(
    track: TrackName,
    split: Annotated[
        SplitName,
        typer.Option(
            help="folds: K-fold members over train+validation; background: one member per "
            "background subset; both: per fold, an all-data member and one per subset."
        ),
    ] = SplitName.folds,
    members: Annotated[
        Optional[int],
        typer.Option(help="folds/both: number of folds (default 5); background: number of subsets (default: best silhouette)."),
    ] = None,
    background_train: Annotated[
        str, typer.Option(help="in: a subset's member trains on that subset; out: on everything except it.")
    ] = "in",
    own_weight: Annotated[float, typer.Option(help="own-subset rule: weight of the members of a video's own background subset.")] = 2.0,
    runs: Annotated[
        Optional[str],
        typer.Option(
            help="Combine these finished `challenge track` runs instead (any heads and feature sets): "
            'comma-separated run ids, @FILE with one per line, or "search:FILTER" (MLflow\'s filter syntax, among '
            "this track's finished runs on this data). Chosen by cross-fitting on validation."
        ),
    ] = None,
    max_runs: Annotated[
        Optional[int],
        typer.Option(min=2, help='With --runs "search:FILTER": keep only this many found runs, the best by validation score.'),
    ] = None,
    config: ConfigOption = None,
    quiet: Quiet = False,
    **settings,
):
    """Train ensemble members, combine them on out-of-fold predictions, smooth (frame tracks),
    write and validate the submission. Every score printed is measured on items the members
    (and the combination rule) did not train on.

    Examples:

        challenge ensemble emi --data /data/hume --split folds --members 5

        challenge ensemble expr --data /data/affwild2 --split both --tune --trials 20

        challenge ensemble va --data /data/affwild2 --split background --background-train out

        challenge ensemble emi --data /data/hume --runs 3f2a9c1e...,81b0d4aa...,c07e55f2...

        challenge ensemble emi --data /data/hume --runs "search:metrics.score > 0.6"

        challenge ensemble emi --data /data/hume --runs "search:tags.head = 'lstm'" --max-runs 5
    """
    set_quiet(quiet)
    from ensembles.run import EnsembleOptions, run_ensemble

    spec = get_track(track)
    resolved = _run_config(config, spec, settings)
    if max_runs is not None and runs is None:
        raise ChallengeError('--max-runs limits the members of --runs "search:FILTER"; pass --runs too.')
    from challenge.preflight import check_run_settings

    check_run_settings(resolved)  # before the members train: --out, the stores, the device
    if runs is not None:
        from ensembles.across_runs import ensemble_runs, member_runs

        result = ensemble_runs(spec, resolved, member_runs(runs), max_runs)
    else:
        options = EnsembleOptions(split=split.value, members=members, background_train=background_train, own_weight=own_weight)
        result = run_ensemble(spec, resolved, options)
    where = "on validation, rules cross-fitted" if runs is not None else "out of fold"
    typer.echo("members (held-out score): " + ", ".join(f"{k} {v:.4f}" for k, v in result.member_scores.items()))
    for step, value in result.steps.items():
        typer.echo(f"  {step:<12} {value:.4f}  ({where})")
    typer.echo(f"ensemble ({result.rule}): {result.score:.4f} {where}; on the validation split alone {result.valid_score:.4f}")
    typer.echo(
        f"gain over the best member: {result.score - result.best_member:+.4f}; each role against the best: "
        + ", ".join(f"{k} {v - result.best_member:+.4f}" for k, v in result.role_scores.items())
    )
    if result.score <= result.best_member:
        typer.secho(f"the ensemble does not beat its best member ({where})", fg="yellow")
    if result.submission:
        typer.echo(f"submission: {result.submission} (validated)")
    typer.echo(f"MLflow run {result.run_id}; compare with: challenge runs {track}")


app.command("ensemble")(
    with_schema_options(
        ensemble_command,
        _run_options(
            [
                "data",
                "features",
                "head",
                "seed",
                "tune",
                "trials",
                "timeout",
                "storage",
                "tracking_uri",
                "out",
                "epochs",
                "device",
                "skip_missing",
                "store",
            ]
        ),
    )
)


def multitask_command(
    tasks: Annotated[str, typer.Option(help="Comma-separated Aff-Wild2 tasks trained together: expr, au, va.")] = "expr,au,va",
    task_weights: Annotated[Optional[str], typer.Option(help="Loss weight per task, in the order of --tasks (default 1 each).")] = None,
    config: ConfigOption = None,
    quiet: Quiet = False,
    **settings,
):
    """One model for several Aff-Wild2 tasks on one root: a shared per-frame encoder with a head
    per task, each trained on the frames that carry its labels; writes and validates each task's
    official submission, with the linear baseline beside each score.

    Examples:

        challenge multitask --data /data/affwild2 --features mae,wav2vec2

        challenge multitask --data /data/affwild2 --tasks expr,au --task-weights 1,0.5
    """
    set_quiet(quiet)
    from challenge.run.multitask import parse_weights, run_multitask

    chosen = [t.strip() for t in tasks.split(",") if t.strip()]
    spec = get_track(chosen[0] if chosen else "expr")
    resolved = _run_config(config, spec, settings)
    weights = parse_weights(chosen, task_weights)
    from challenge.preflight import check_run_settings

    check_run_settings(resolved)  # before the model trains: --out, the stores, the device
    result = run_multitask(resolved, chosen, weights)
    typer.echo(f"multi-task model: weighted validation score {result.score:.4f} at its best epoch")
    for task in result.tasks:
        baseline = f"; linear baseline {task.baseline:.4f}" if task.baseline is not None else ""
        written = task.submission or ("none (control run)" if resolved.shuffle_labels else "none (no test videos)")
        typer.echo(f"  {task.task:<5} validation {task.score:.4f}{baseline}; submission: {written}")
    typer.echo(f"MLflow run {result.run_id} (experiment affwild-multitask), one nested run per task")


app.command("multitask")(
    with_schema_options(
        multitask_command,
        _run_options(
            ["data", "features", "seed", "tracking_uri", "out", "epochs", "window", "device", "skip_missing", "store", "shuffle_labels"]
        ),
    )
)


@app.command("agree")
def agree_command(
    first: Annotated[Path, typer.Argument(help="Annotator A: an .eaf file or a folder of them.")],
    second: Annotated[Path, typer.Argument(help="Annotator B: an .eaf file or a folder (files paired by name).")],
    tiers: Annotated[str, typer.Option(help="Comma-separated tiers to compare: smiles, laughs.")] = "smiles,laughs",
    scheme: Annotated[Optional[Path], typer.Option(help="ELAN tier names and level spellings (YAML).")] = None,
    min_iou: Annotated[float, typer.Option(help="Segments overlap only above this IoU.")] = 0.10,
    csv: Annotated[Optional[Path], typer.Option(help="Write the table to this CSV file.")] = None,
    mlflow_log: Annotated[
        bool, typer.Option("--mlflow", help="Log the figures and CSV as an MLflow run (experiment 'agreement').")
    ] = False,
    tracking_uri: TrackingOption = None,
):
    """Inter-annotator agreement per tier: Cohen's kappa over frames (with and without intensity
    levels), Overlap_perc, mean IoU of overlapping segments, Overlap_levels.

    Examples:

        challenge agree demo_data/smiles/a/annotations/annotator1 demo_data/smiles/a/annotations/annotator2

        challenge agree ann1/s01.eaf ann2/s01.eaf --tiers smiles --csv agreement.csv --mlflow
    """
    from rich.console import Console
    from rich.table import Table

    from tracks.smiles.agreement import compare_annotations
    from tracks.smiles.elan import ElanScheme, read_eaf

    elan = ElanScheme.load(scheme) if scheme else None

    def load(path: Path) -> dict:
        if path.is_dir():
            files = sorted(path.glob("*.eaf"))
            if not files:
                raise ChallengeError(f"{path}: no .eaf files.")
            return {f.stem: read_eaf(f, elan) for f in files}
        return {"file": read_eaf(path, elan)}

    results = compare_annotations(load(first), load(second), [t.strip() for t in tiers.split(",")], min_iou=min_iou)
    table = Table(title=f"agreement {first} vs {second}")
    columns = list(results[0].row())
    for column in columns:
        table.add_column(column)
    for result in results:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in result.row().values()))
    Console(width=160).print(table)
    if csv or mlflow_log:
        import pandas as pd

        frame = pd.DataFrame([r.row() for r in results])
        if csv:
            frame.to_csv(csv, index=False)
            typer.echo(f"wrote {csv}")
        if mlflow_log:
            import mlflow

            from challenge.stores import tracking

            experiment = tracking.setup(tracking_uri, "agreement")
            with mlflow.start_run(experiment_id=experiment, run_name=f"{first.name}-vs-{second.name}") as run:
                mlflow.set_tags({"challenge.kind": "agreement", "first": str(first), "second": str(second)})
                for r in results:
                    mlflow.log_metrics({f"{r.tier}.{k}": v for k, v in r.row().items() if isinstance(v, float)})
                mlflow.log_table(frame, "agreement.json")
            typer.echo(f"MLflow run {run.info.run_id} (experiment 'agreement')")


@app.command("validate")
def validate_command(
    track: TrackName,
    file: Annotated[Path, typer.Argument(help="Submission file.")],
    data: Annotated[Path, typer.Option(help="Dataset root: the test clips listed there are the reference.")],
):
    """Check a submission against the official format; exits non-zero on any problem.

    Example:

        challenge validate emi submissions/emi/<run-id>/predictions.csv --data /data/hume

        challenge validate expr submissions/expr/<run-id>/predictions.txt --data /data/affwild2
    """
    spec = get_track(track)
    if spec.validate_submission is None:
        raise ChallengeError(f"{track} writes reports, not a leaderboard file: there is nothing to validate.")
    test_ids = [s.id for s in spec.read(data, on_missing="skip").split("test")]
    if not test_ids:
        raise ChallengeError(f"{data}: no test {spec.items} found, nothing to validate against.")
    problems = spec.validate_submission(data, file, test_ids)
    if problems:
        typer.secho(f"{file}: INVALID, {len(problems)} kind(s) of problem:", fg="red")
        for problem in problems:
            typer.echo(problem)
        raise typer.Exit(1)
    typer.secho(f"{file}: valid ({len(test_ids)} test {spec.items}, official format)", fg="green")


@app.command("predict")
def predict_command(
    run_id: Annotated[str, typer.Argument(help="MLflow run id of a `challenge track` run (`challenge runs TRACK` lists them).")],
    data: Annotated[Path, typer.Option(help="Dataset root in the track's official layout; its test split is predicted.")],
    out: OutOption = None,
    tracking_uri: TrackingOption = None,
    device: DeviceOption = "auto",
    store: StoreOption = None,
    quiet: Quiet = False,
):
    """Reload a run's saved model (head, post-processing, normalisation, feature settings) and
    write and validate a submission for DIR's test split, without retraining. The features must
    be those the model was trained on (same models, same cache keys), else it says which differ.

    Examples:

        challenge predict 3f2a9c... --data /data/hume

        challenge predict 3f2a9c... --data /data/affwild2 --out submissions/expr/final
    """
    set_quiet(quiet)
    from challenge.preflight import check_out, check_stores
    from challenge.run.saved_model import load_run_model, predict_test

    check_out(out)  # before the test split is predicted
    check_stores(str(tracking_uri) if tracking_uri else None, None)
    saved = load_run_model(run_id, str(tracking_uri) if tracking_uri else None)
    spec = get_track(saved.track)
    if spec.write_submission is None:
        raise ChallengeError(f"run {run_id} is a {spec.name} run: that track writes reports, not a leaderboard file.")
    ids, decisions = predict_test(spec, saved, data, str(store) if store else None, device or "auto")
    folder = Path(out) if out else Path("submissions") / spec.name / f"{run_id}-predicted"
    folder.mkdir(parents=True, exist_ok=True)
    path = spec.write_submission(data, folder, ids, decisions)
    typer.echo(f"submission: {path} (validated; {len(ids)} test {spec.items}, model of run {run_id}, no retraining)")


@app.command("reexport")
def reexport_command(
    run_id: Annotated[str, typer.Argument(help="MLflow run id of a run saved by an earlier version (a pickled head.pt).")],
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Required: you trust everyone who could write this run's artifacts.")
    ] = False,
    tracking_uri: TrackingOption = None,
):
    """Convert a run saved by an earlier version, whose head is a pickle (which can run any code
    when it is loaded), into the data format that `predict` and `live` read. Run it only on runs
    you trust; the converted model is logged to the same run.

    Example:

        challenge reexport 3f2a9c... --trust-pickle
    """
    from challenge.run.saved_model import reexport

    if not trust_pickle:
        raise ChallengeError(
            "reexport unpickles the run's head.pt, which runs whatever code it holds: pass --trust-pickle "
            "if you trust everyone who could write to this run's artifacts; otherwise retrain the run."
        )
    uri = reexport(run_id, str(tracking_uri) if tracking_uri else None)
    typer.echo(f"run {run_id}: model re-exported as data ({uri}); `challenge predict {run_id}` reads it now")


@app.command("runs")
def runs_command(
    track: TrackName,
    limit: Annotated[int, typer.Option(help="How many runs to show.")] = 10,
    every_state: Annotated[
        bool, typer.Option("--all", help="The latest runs in every state (RUNNING, FAILED, KILLED), not only the best finished.")
    ] = False,
    tracking_uri: TrackingOption = None,
):
    """Compare the best runs of a track from the MLflow store. Runs whose process was killed
    are marked KILLED when the next command starts; `--all` lists them.

    Examples:

        challenge runs emi --limit 5

        challenge runs emi --all
    """
    from rich.console import Console
    from rich.table import Table

    from challenge.stores.reports import best_runs

    get_track(track)  # a clear error for a misspelt name
    rows = best_runs(track, tracking_uri, limit, every_state)
    if not rows:
        typer.echo(f"no runs for {track} yet: run `challenge track {track} --data DIR`.")
        return
    table = Table(title=f"{'latest' if every_state else 'best'} {track} runs")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console(width=160).print(table)


@app.command("doctor")
def doctor_command():
    """What this installation has and lacks (optional networks, servers, the browser, the GPU),
    each missing piece with the exact line that adds it. Exits 1 when a required piece is missing.

    Example:

        challenge doctor
    """
    from challenge.app.doctor import report

    lines, missing = report()
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)
    if missing:
        raise typer.Exit(1)


@app.command("serve")
def serve_command(
    tracking_uri: TrackingOption = None,
    storage: StorageOption = None,
    host: Annotated[str, typer.Option(help="Address both servers bind to; 0.0.0.0 exposes the runs to the network.")] = "127.0.0.1",
    mlflow_port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    dashboard_port: Annotated[int, typer.Option(help="Port of optuna-dashboard.")] = 8080,
    basic_auth: Annotated[
        bool,
        typer.Option(
            "--basic-auth",
            help="Serve the MLflow UI through MLflow's basic-auth app (users and passwords; change the admin password at once).",
        ),
    ] = False,
):
    """Browse the runs (MLflow UI) and the studies (optuna-dashboard) until Ctrl-C.

    Examples:

        challenge serve

        challenge serve --storage postgresql+psycopg2://user@db-host/optuna --tracking-uri http://tracking-host:5000
    """
    from challenge.app.serve import serve

    serve(tracking_uri, storage, host, mlflow_port, dashboard_port, basic_auth=basic_auth)


@app.command("live")
def live_command(
    source: Annotated[str, typer.Argument(help="A webcam index (0), a video file, or an rtsp/http URL.")],
    model: Annotated[
        Optional[str],
        typer.Option(
            help="MLflow run id of a cnn-gru run (challenge track smile-intensity --head cnn-gru); "
            "'fer' for the pretrained FER2013 network with default thresholds; or a model file of `challenge live-calibrate`."
        ),
    ] = None,
    untrained: Annotated[
        bool,
        typer.Option("--untrained", help="Random cnn-gru weights instead of --model: checks the pipeline and its speed, never a result."),
    ] = False,
    port: Annotated[
        Optional[int],
        typer.Option(
            help="Serve the live view on this port (default 8000 for cameras and URLs; a file with --out and no --port runs offline)."
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address of the live view; 0.0.0.0 shows it to the network, behind a token printed in the URL.")
    ] = "127.0.0.1",
    require_token: Annotated[
        bool,
        typer.Option(
            "--require-token", help="Ask for the printed token on 127.0.0.1 too (other users of this machine can reach loopback)."
        ),
    ] = False,
    out: Annotated[
        Optional[Path], typer.Option(help="CSV of every face reading: frame, time, track id, box, class probabilities, intensity.")
    ] = None,
    detector: Annotated[
        Optional[str], typer.Option(help="Face detector (default: the one the model's crops were made with, centerface).")
    ] = None,
    detect_every: Annotated[
        Optional[int], typer.Option(min=1, help="Frames between detections; the tracker follows faces in between (default: the run's, 10).")
    ] = None,
    detection_width: Annotated[
        Optional[int],
        typer.Option(
            min=64, help="Frames are scaled to this width for the detector (default: the run's, 320); wider finds smaller faces, slower."
        ),
    ] = None,
    reference: Annotated[
        Optional[Path],
        typer.Option(help="Offline: an ELAN annotation of this video to score the CSV against (the face seen on most frames)."),
    ] = None,
    subtle: Annotated[
        str, typer.Option(help="With --reference: how the Subtle level is read (drop, keep, merge), as in the run.")
    ] = "drop",
    sequential: Annotated[
        bool, typer.Option("--sequential", help="One model call per face instead of one per frame (for comparison).")
    ] = False,
    tracking_uri: TrackingOption = None,
    quiet: Quiet = False,
):
    """Every face of a camera, stream or video with its smile intensity (Neutral/Low/Medium/High):
    a web view on 127.0.0.1 and/or a per-face CSV.

    Examples:

        challenge live 0 --model RUN_ID                       # webcam 0, page on http://127.0.0.1:8000/

        challenge live session.mp4 --model RUN_ID --out faces.csv --reference session.eaf

        challenge live rtsp://camera.local/stream --model RUN_ID --port 8080 --out faces.csv
    """
    set_quiet(quiet)
    from challenge.app.live.fer_model import live_model_named
    from challenge.app.live.model import LiveModel
    from challenge.app.live.run import run_live

    if (model is None) == (not untrained):
        raise ChallengeError("pass --model RUN_ID (a cnn-gru run), or --untrained to check the pipeline with random weights.")
    if reference is not None and out is None:  # before anything starts: scoring reads the CSV at the end
        raise ChallengeError("--reference scores the CSV of the readings: add --out faces.csv.")
    if reference is not None and not reference.is_file():
        raise ChallengeError(f"--reference {reference}: no such ELAN file.")
    if out is None and port is None and not source.isdigit() and "://" not in source:
        port = 8000  # a file without --out: show it
    live_model = LiveModel.untrained(["Neutral", "Low", "Medium", "High"]) if untrained else live_model_named(model, tracking_uri)
    summary = run_live(source, live_model, out, port, host, detect_every, detector, not sequential, detection_width, require_token)
    typer.echo(summary.describe())
    if out is not None:
        typer.echo(f"faces: {out}")
    if reference is not None:
        from challenge.app.live.score import score_csv
        from challenge.media import video_frame_count, video_frame_rate

        typer.echo(score_csv(out, reference, video_frame_count(Path(source)), video_frame_rate(Path(source)), subtle=subtle).describe())


@app.command("live-calibrate")
def live_calibrate_command(
    video: Annotated[Path, typer.Argument(help="A video of one annotated person.")],
    reference: Annotated[Path, typer.Argument(help="Its ELAN annotation (smile levels, read as the smile-intensity track reads them).")],
    save: Annotated[Path, typer.Option(help="Where to write the calibrated model (a JSON file that --model takes).")] = Path(
        "fer-model.json"
    ),
    quiet: Quiet = False,
):
    """Fit the FER2013 network's happiness thresholds (Neutral/Low/Medium/High) on an annotated
    video, for `challenge live SOURCE --model FILE`. Prints the macro F1 before and after.

    Example:

        challenge live-calibrate session.mp4 session.eaf --save fer-model.json
    """
    set_quiet(quiet)
    from challenge.app.live.fer_model import calibrate

    if not video.is_file() or not reference.is_file():
        raise ChallengeError(f"live-calibrate: {video if not video.is_file() else reference}: no such file.")
    model, fitted = calibrate(video, reference)
    model.save(save, fitted)
    typer.echo(
        f"thresholds {', '.join(f'{t:.3f}' for t in model.thresholds)} on P(happy) (track {fitted['track_id']}, "
        f"{fitted['frames']} annotated frames): macro F1 {fitted['macro_f1_default_thresholds']:.4f} with the default "
        f"thresholds, {fitted['macro_f1_fitted']:.4f} fitted (on the same video: an optimistic figure)"
    )
    typer.echo(f"model: {save}; use it with: challenge live SOURCE --model {save}")


@app.command("warm")
def warm_command(
    stop: Annotated[bool, typer.Option("--stop", help="End the warm process.")] = False,
    idle: Annotated[float, typer.Option(help="Minutes without a command after which it ends itself.")] = 60.0,
) -> None:
    """Keep a process with torch, MLflow, Optuna and pandas imported, so that commands start in it.

    Every later `challenge` command of this virtual environment runs in a child of that process
    (same directory, environment, terminal and exit code; Ctrl-C works), skipping about 4 s of
    imports. A command whose thread, MLflow, Optuna or Python settings differ from the warm
    process's runs cold and says so. CHALLENGE_WARM=0 runs one command cold.

    \b
        challenge warm                 # then: challenge track emi --data DIR --tune
        challenge warm --stop
    """
    from challenge.app import warm

    if stop:
        say("warm process ended" if warm.stop() else "no warm process was running")
        return
    pid, path = warm.start(idle)
    say(
        f"warm process {pid} ready (socket {path}, log {warm.log_path()}); this environment's commands now start in it; "
        f"it ends after {idle:g} idle minutes or with `challenge warm --stop`"
    )


pretrain_app = typer.Typer(
    help="Self-supervised pretraining on your own data; the output is a backbone --visual-model takes.", no_args_is_help=True
)
app.add_typer(pretrain_app, name="pretrain")


def pretrain_mae_command(
    images: Annotated[
        Optional[list[Path]],
        typer.Option(
            help="A folder of face images, searched recursively (Aff-Wild2's cropped_aligned, any image folder); repeat for several."
        ),
    ] = None,
    videos: Annotated[
        Optional[list[Path]],
        typer.Option(
            help="A folder of videos: faces are found and cut by the project's detector "
            "(once, kept under OUT/face-crops); repeat for several."
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="Output folder, and where the checkpoint lives while training (default pretrained/mae-<digest of inputs and settings>)."
        ),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="YAML file of settings (top level or under `pretrain:`); flags override it.")
    ] = None,
    device: DeviceOption = None,
    tracking_uri: TrackingOption = None,
    skip_missing: Annotated[
        bool, typer.Option("--skip-missing", help="Leave out unreadable images and videos (counted) instead of stopping.")
    ] = False,
    quiet: Quiet = False,
    **settings,
):
    """Pretrain a masked autoencoder (ViTMAEForPreTraining) on face images, from scratch or from
    --init. Resumable: after a crash or a kill, the same command continues from the last epoch.
    Several GPUs or machines: start it under torchrun.

    Examples:

        challenge pretrain mae --images /data/affwild2/cropped_aligned --epochs 100 --out /models/mae-faces

        challenge pretrain mae --videos /data/smiles/videos --init /models/mae_pretrain_vit_base.pth --epochs 20

        torchrun --nproc-per-node 8 -m challenge.app.cli pretrain mae --images /data/faces --batch-size 512

        challenge track expr --data /data/affwild2 --features mae --visual-model /models/mae-faces
    """
    _pretrain("mae", {"images": images or [], "videos": videos or []}, out, config, device, tracking_uri, skip_missing, quiet, settings)


def pretrain_social_mae_command(
    videos: Annotated[
        Optional[list[Path]],
        typer.Option(
            help="A folder of videos with sound and faces (searched recursively); each is read once into OUT/clips. Repeat for several."
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="Output folder, and where the checkpoint lives while training "
            "(default pretrained/social-mae-<digest of inputs and settings>)."
        ),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="YAML file of settings (top level or under `pretrain:`); flags override it.")
    ] = None,
    device: DeviceOption = None,
    tracking_uri: TrackingOption = None,
    skip_missing: Annotated[
        bool, typer.Option("--skip-missing", help="Leave out unreadable videos (counted) instead of stopping.")
    ] = False,
    quiet: Quiet = False,
    **settings,
):
    """Pretrain Social-MAE (audio-visual masked autoencoder: log-mel filterbank and face frames,
    modality encoders, joint blocks, reconstruction plus contrastive loss) on clips of videos,
    from scratch or from --init (a folder it wrote, or the authors' .pth). Resumable; torchrun for
    several GPUs. The defaults are the paper's sizes (ViT-B, 128 x 1024 filterbank, 8 frames).

    Examples:

        challenge pretrain social-mae --videos /data/voxceleb2/mp4 --init /models/social-mae.pth --epochs 5

        challenge track smile-laugh --data /data/ndc --features social-mae --social-mae-model pretrained/social-mae-XXXX
    """
    _pretrain("social-mae", {"videos": videos or []}, out, config, device, tracking_uri, skip_missing, quiet, settings)


# What differs between the pretraining commands, as data: their options and docstrings are
# above, everything they do is `_pretrain`.
PRETRAININGS = {
    "mae": {
        "settings": "MAEPretrainSettings",
        "run": "challenge.pretrain.mae:pretrain_mae",
        "items": "images",
        "held_out": "held-out reconstruction loss",
        "use": "backbone: {out} (--visual-model {out})",
    },
    "social-mae": {
        "settings": "SocialMAEPretrainSettings",
        "run": "challenge.pretrain.social:pretrain_social_mae",
        "items": "clips",
        "held_out": "held-out loss",
        "use": "model: {out} (--features social-mae --social-mae-model {out})",
    },
}


def _pretrain(kind: str, inputs: dict, out, config, device, tracking_uri, skip_missing: bool, quiet: bool, flags: dict) -> None:
    """Settings from --config and the flags, the output folder, the training, and its summary."""
    import importlib

    from challenge.app.cli_options import schema_flags
    from challenge.config import load_settings
    from challenge.pretrain import settings as schemas
    from challenge.pretrain.loop import default_out

    set_quiet(quiet)
    what = PRETRAININGS[kind]
    model = getattr(schemas, what["settings"])
    resolved = load_settings(model, config, schema_flags(flags, model), "pretrain", "pretraining settings")
    module, function = what["run"].split(":")
    target = out or default_out(kind, inputs, resolved)
    result = getattr(importlib.import_module(module), function)(
        *inputs.values(), target, resolved, device or "auto", tracking_uri, skip_missing
    )
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for all
        return
    typer.echo(
        f"pretrained on {result.items} {what['items']}, {result.steps} steps: training loss {result.first_loss:.4f} -> "
        f"{result.last_loss:.4f}, best {what['held_out']} {result.best_valid_loss:.4f}"
        + (f"; {result.skipped} unreadable left out" if result.skipped else "")
    )
    typer.echo(what["use"].format(out=result.out) + (f"; MLflow run {result.run_id}" if result.run_id else ""))


def _pretrain_options(model_name: str) -> list[inspect.Parameter]:
    from challenge.app.cli_options import schema_parameters
    from challenge.pretrain import settings

    return schema_parameters(getattr(settings, model_name), panel="pretraining")


pretrain_app.command("mae")(with_schema_options(pretrain_mae_command, _pretrain_options("MAEPretrainSettings")))
pretrain_app.command("social-mae")(with_schema_options(pretrain_social_mae_command, _pretrain_options("SocialMAEPretrainSettings")))


@app.command("demo")
def demo_command(
    directory: Annotated[Path, typer.Option(help="Where the demo dataset and its stand-in model live.")] = Path("demo_data"),
    trials: TrialsOption = 6,
    timeout: TimeoutOption = 150,
    quiet: Quiet = False,
):
    """The main job on the embedded demo: write EMI demo data (once), extract features, tune
    the global-context LSTM, write and validate the submission, record it all in MLflow.

    Example:

        challenge demo --trials 6
    """
    set_quiet(quiet)
    from challenge.app.demo import run_demo

    run_demo(directory, trials, timeout)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main() -> None:
    from challenge.app import warm

    code = warm.forward(sys.argv[1:], entry="challenge.app.cli:main")  # a `challenge warm` process runs it, when there is one
    if code is not None:
        sys.exit(code)
    try:
        app()
    except ChallengeError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _interrupted()
    except Exception as error:
        if not _raised_by_an_interrupt(error):
            raise
        # Ctrl-C landed inside a store's write, and the clean-up after it (MLflow marking the run
        # killed) then found the database still locked by that write: still an interrupt
        typer.secho(f"(the interrupted run's status was not recorded: {str(error).splitlines()[0]})", err=True)
        _interrupted()
    except SystemExit as done:
        if done.code == 130:  # typer turns Ctrl-C inside a command into a silent exit 130
            _interrupted()
        raise


def _raised_by_an_interrupt(error: BaseException) -> bool:
    """Whether a KeyboardInterrupt is among the exceptions this one was raised while handling."""
    seen, todo = set(), [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        todo += [current.__cause__, current.__context__]
    return False


def _interrupted() -> None:
    typer.secho("interrupted: finished entries, trials and runs are kept; run the same command to resume.", err=True)
    sys.exit(130)


if __name__ == "__main__":
    main()
