"""`challenge ensemble TRACK --runs ID,ID,...`: finished `challenge track` runs of any heads and
feature sets, combined into one submission.

Every track run logs `outputs.npz` (challenge.run.finish.save_outputs): its head's raw outputs on
the validation rows, their truth, and its outputs on the test items. The runs are members whose
held-out rows are the validation split: the combination rules are fitted and chosen by
cross-fitting over the validation clips or videos (never on test), as for the trained
ensembles, and the chosen rule, fitted on all of them, combines the runs' test outputs.

Runs are refused unless they are comparable, each offender named: the same track, the same
data fingerprint (ids, splits and labels), the same validation rows and truth and the same test
items; a control run (shuffled labels) is never a member.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from challenge.errors import ChallengeError, list_offenders
from challenge.progress import say
from challenge.run.finish import OUTPUTS
from challenge.track import TrackSpec
from ensembles.finish import EnsembleResult, RoleTable, TestTable, finish_ensemble


@dataclass
class RunOutputs:
    run_id: str
    head: str
    features: list[str]
    fingerprint: str
    score: float  # the run's own validation score, as it logged it
    valid_ids: list[str]
    valid_lengths: list[int]
    truth: np.ndarray
    valid: np.ndarray
    test_ids: list[str]
    test_lengths: list[int]
    test: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.head} on {'+'.join(self.features)}"

    @property
    def role(self) -> str:
        return f"{self.run_id[:8]}-{self.head}"


def resolve_run_ids(given: list[str], experiment_ids: list[str]) -> list[str]:
    """Full run ids for the ones given, which may be the 8-character ids `challenge runs`
    prints: a prefix must name exactly one run of the track's experiments."""
    import mlflow

    short = [g for g in given if len(g) < 32]
    if not short:
        return given
    known = mlflow.search_runs(experiment_ids=experiment_ids, output_format="list")
    resolved = []
    for g in given:
        if len(g) >= 32:
            resolved.append(g)
            continue
        matches = [r.info.run_id for r in known if r.info.run_id.startswith(g)]
        if len(matches) != 1:
            raise ChallengeError(
                f"run {g}: {'no run' if not matches else f'{len(matches)} runs'} of this track start(s) with it; "
                "give the full id (printed as `MLflow run ID` by the run, or in `challenge runs TRACK`)."
            )
        resolved.append(matches[0])
    return list(dict.fromkeys(resolved))


def read_run(client, run_id: str, track: str) -> RunOutputs:
    """A finished track run's outputs, or an error naming the run and what it lacks."""
    from mlflow.exceptions import MlflowException

    from challenge.stores.reports import counted_track

    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise ChallengeError(
            f"run {run_id}: not found in the tracking store ({error.message.splitlines()[0]}). List the runs with: challenge runs {track}"
        ) from None
    tags = run.data.tags
    problems = []
    if counted_track(tags) != track:
        problems.append(f"it is a run of track {counted_track(tags)!r}, not {track}")
    if tags.get("challenge.kind") not in ("track", "multitask-task"):
        problems.append(
            f"it is a {tags.get('challenge.kind', 'non-challenge')} run, not a `challenge track` run "
            "(or a task run of `challenge multitask`)"
        )
    if tags.get("shuffled_labels") == "True":
        problems.append("it is a control run (shuffled labels)")
    if run.info.status != "FINISHED":
        problems.append(f"its status is {run.info.status}")
    if problems:
        raise ChallengeError(f"run {run_id}: cannot be an ensemble member: {'; '.join(problems)}.")
    try:
        local = client.download_artifacts(run_id, OUTPUTS)
    except (MlflowException, OSError):
        raise ChallengeError(
            f"run {run_id}: holds no {OUTPUTS} (runs made before the cross-run ensembles, or a seeds run's "
            "parent: pass one of its seed runs). Run the track again to have one."
        ) from None
    with np.load(local) as saved:
        arrays = {k: saved[k] for k in saved.files}
    return RunOutputs(
        run_id,
        tags.get("head", "?"),
        tags.get("features", "").split(","),
        tags.get("data_fingerprint", ""),
        run.data.metrics.get("score", float("nan")),
        arrays["valid_ids"].tolist(),
        arrays["valid_lengths"].tolist(),
        arrays["truth"],
        arrays["valid"].astype(np.float64),
        arrays["test_ids"].tolist(),
        arrays["test_lengths"].tolist(),
        arrays["test"].astype(np.float64),
    )


def check_comparable(runs: list[RunOutputs], fingerprint: str) -> None:
    """Every run on the data given (`fingerprint`), with the same rows: else the offenders."""
    first = runs[0]
    offenders = []
    for r in runs:
        if r.fingerprint != fingerprint:
            offenders.append(f"{r.run_id}: data fingerprint {r.fingerprint or '(none)'}, the data given has {fingerprint}")
        elif r.valid_ids != first.valid_ids or r.valid_lengths != first.valid_lengths or not np.array_equal(r.truth, first.truth):
            offenders.append(f"{r.run_id}: other validation rows than {first.run_id}")
        elif r.test_ids != first.test_ids or r.test_lengths != first.test_lengths:
            offenders.append(f"{r.run_id}: other test items than {first.run_id}")
        elif r.valid.shape[1] != first.valid.shape[1]:
            offenders.append(f"{r.run_id}: {r.valid.shape[1]} outputs per row, {first.run_id} has {first.valid.shape[1]}")
    if offenders:
        raise ChallengeError(
            f"{len(offenders)} run(s) are not comparable with the others, so they cannot be combined:\n"
            f"{list_offenders(offenders)}\nCombine runs made on the same data (the same --data, splits and labels)."
        )


def ensemble_runs(spec: TrackSpec, config, run_ids: list[str], max_runs: int | None = None) -> EnsembleResult:
    from mlflow import MlflowClient

    from challenge.run.context import RunContext
    from challenge.run.prepare import read_samples
    from challenge.stores import tracking
    from challenge.stores.reports import track_experiments

    if spec.run is not None:
        raise ChallengeError(f"ensembles are for the leaderboard tracks; {spec.name} has its own pipeline (challenge track {spec.name}).")
    client = MlflowClient(tracking.connect(config.tracking_uri))
    experiments = track_experiments(spec.name, config.tracking_uri)
    samples = read_samples(spec, config)  # the data given: its fingerprint must be the runs', and the test list validates the file
    fingerprint = samples.fingerprint()
    searched = len(run_ids) == 1 and run_ids[0].startswith(SEARCH)
    if max_runs is not None and not searched:
        raise ChallengeError('--max-runs limits the members of --runs "search:FILTER"; with listed run ids, list fewer.')
    if searched:
        run_ids = searched_runs(run_ids[0][len(SEARCH) :], spec.name, experiments, fingerprint, max_runs)
    run_ids = list(dict.fromkeys(r.strip() for r in run_ids if r.strip()))
    if len(run_ids) < 2:
        raise ChallengeError(f"--runs needs at least two run ids (got {len(run_ids)}); list them with: challenge runs {spec.name}")
    run_ids = resolve_run_ids(run_ids, experiments)
    runs = [read_run(client, run_id, spec.name) for run_id in run_ids]
    # the ensemble run is tagged with its members' heads and feature sets, not the track's defaults
    heads = "+".join(dict.fromkeys(r.head for r in runs))
    features = list(dict.fromkeys(f for r in runs for f in r.features))
    context = RunContext(spec, config.model_copy(update={"head": heads, "features": features}), kind="ensemble")
    check_comparable(runs, fingerprint)
    first = runs[0]
    lengths = first.valid_lengths
    row_items = np.repeat(np.arange(len(lengths)), lengths)
    roles = [r.role for r in runs]
    table = RoleTable(
        roles,
        np.stack([r.valid for r in runs]),
        first.truth,
        lengths,
        row_items,
        np.full(len(row_items), -1),
        [None] * len(runs),
        np.ones(len(row_items), bool),
    )
    test = None
    if first.test_ids:
        test = TestTable(first.test_ids, np.stack([r.test for r in runs]), first.test_lengths, np.full(sum(first.test_lengths), -1))
    for r in runs:
        say(f"member {r.run_id[:8]} ({r.name}): validation {r.score:.4f} as the run logged it")
    members = {r.run_id[:8]: r.score for r in runs}
    with context.start(
        fingerprint,
        {},
        name=f"ensemble-runs-{len(runs)}",
        params={"ensemble.runs": ",".join(run_ids)},
        sections={"ensemble": {"runs": run_ids}},
        **{"ensemble.split": "runs"},
    ) as run:
        return finish_ensemble(
            spec,
            config,
            table,
            test,
            members,
            run.run_id,
            record={"split": "runs", "runs": run_ids, "members_described": {r.run_id: r.name for r in runs}},
        )


SEARCH = "search:"


def searched_runs(filter_string: str, track: str, experiment_ids: list[str], fingerprint: str, max_runs: int | None = None) -> list[str]:
    """--runs "search:FILTER": the finished, unshuffled runs of this track on this data (its
    fingerprint) that MLflow's filter selects, best score first; with `max_runs`, the best
    that many of them."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from challenge.stores.reports import runs_of_track

    given = filter_string.strip()
    conditions = [given] if given else []
    conditions += ["attributes.status = 'FINISHED'", f"tags.data_fingerprint = '{fingerprint}'"]
    try:
        found = mlflow.search_runs(experiment_ids=experiment_ids, filter_string=" and ".join(conditions), order_by=["metrics.score DESC"])
    except MlflowException as error:
        raise ChallengeError(
            f"--runs search:{filter_string}: MLflow cannot read this filter ({error.message.splitlines()[0]}). "
            "It is MLflow's search syntax, conditions joined by `and`, e.g. "
            "\"search:tags.head = 'lstm' and metrics.score > 0.5\"."
        ) from None
    if found.empty:
        return []
    members = runs_of_track(found, track, ("track",))
    if "tags.shuffled_labels" in found:
        members &= found["tags.shuffled_labels"] != "True"
    ids = found[members]["run_id"].tolist()
    say(f"--runs search:{given}: {len(ids)} finished run(s) of {track} on this data: {', '.join(i[:8] for i in ids) or 'none'}")
    if max_runs is not None and len(ids) > max_runs:
        # chosen by the same validation score the rules are cross-fitted on: the ensemble's
        # printed score is then optimistic, and the message says so
        say(
            f"--max-runs {max_runs}: kept the {max_runs} best by validation score ({', '.join(i[:8] for i in ids[:max_runs])}); "
            f"left out {', '.join(i[:8] for i in ids[max_runs:])}. Chosen on validation, so the ensemble's validation score is optimistic."
        )
        ids = ids[:max_runs]
    return ids


def member_runs(text: str) -> list[str]:
    """--runs: comma-separated run ids, @FILE with one id per line, or search:FILTER."""
    if text.startswith(SEARCH):
        return [text]
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise ChallengeError(f"--runs {text}: {path} not found (one run id per line).")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return text.split(",")
