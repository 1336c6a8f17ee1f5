"""`challenge ensemble`: members over background subsets and/or folds, combined and smoothed on
out-of-fold predictions, one MLflow run with a nested run per member, one validated submission.

    read + extract once ─▶ head parameters (best tuned run, or --tune) ─▶ plan members
      ─▶ train each member (nested run) ─▶ out-of-fold table, one column per role
      ─▶ combination rules, cross-fitted ─▶ smoothing sigma (frame tracks) ─▶ submission
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from challenge.config import RunConfig
from challenge.errors import ChallengeError
from challenge.progress import say
from challenge.track import Problem, TrackSpec
from ensembles.finish import EnsembleResult, RoleTable, TestTable, evaluate, finish_ensemble
from ensembles.members import Member, evaluation_items, plan_members

DEFAULT_FOLDS = 5


@dataclass
class EnsembleOptions:
    split: str = "folds"  # folds, background or both
    members: int | None = None  # folds/both: K folds (default 5); background: K subsets (default: silhouette)
    background_train: str = "in"  # a subset's member trains on it ("in") or on everything else ("out")
    own_weight: float = 2.0  # weight of a video's own-subset members in the own-subset rule
    stop_share: float = 0.2  # share of a member's training videos held back for early stopping


def run_ensemble(spec: TrackSpec, config: RunConfig, options: EnsembleOptions) -> EnsembleResult:
    import mlflow

    from challenge.heads import get_head
    from challenge.preflight import check_run_settings
    from challenge.run.context import RunContext
    from challenge.run.prepare import prepare_features, read_samples
    from challenge.run.protocols import hold_out
    from challenge.run.selection import head_overrides, tune_head
    from challenge.stores import tracking

    check_run_settings(config)
    if spec.run is not None:
        raise ChallengeError(f"ensembles are for the leaderboard tracks; {spec.name} has its own pipeline (challenge track {spec.name}).")
    head_cls = get_head(config.head)
    if head_cls.reads == "media":
        raise ChallengeError(
            f"ensembles read cached features; {head_cls.name} fine-tunes a backbone. Fine-tune once with `challenge track "
            f"{spec.name} --finetune`, then pass its backbone folder as --audio-model/--visual-model to the ensemble."
        )
    context = RunContext(spec, config, kind="ensemble")
    device = context.device
    samples = read_samples(spec, config)
    samples, splits, feature_keys, _ = prepare_features(spec, config, samples)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    pool = type(train).join([train, valid])
    pool_samples = [*samples.split("train"), *samples.split("valid")]
    # a member's held-out videos are whole groups: a participant's other videos (BAH) or the
    # other sides of one recording never sit on the training side
    groups = spec.groups([s.id for s in pool_samples]) if spec.group_of else [str(s.video or s.id) for s in pool_samples]
    subsets, test_subsets, clustering = None, None, None
    if options.split != "folds":
        subsets, test_subsets, clustering = _background_subsets(samples, config, options, pool_samples, groups, len(train))
    members = plan_members(
        options.split,
        groups,
        len(train),
        folds=options.members or DEFAULT_FOLDS,
        subsets=subsets,
        background_train=options.background_train,
        stop_share=options.stop_share,
        seed=config.seed,
    )
    fingerprint = samples.fingerprint()
    score_value = lambda truth, outputs: spec.score(truth, outputs).value  # noqa: E731
    overrides = head_overrides(config, head_cls, spec.problem)
    logged = {**{f"ensemble.{k}": v for k, v in asdict(options).items()}, "ensemble.members_trained": len(members)}
    with context.start(
        fingerprint,
        feature_keys,
        name=f"ensemble-{options.split}-{config.head}-{'+'.join(config.features)}",
        params=logged,
        sections={"ensemble": asdict(options)},
        **{"ensemble.split": options.split},
    ) as run:
        if clustering is not None:
            mlflow.log_metrics(
                {"background.k": clustering.k, **{f"background.silhouette_k{k}": v for k, v in clustering.silhouettes.items()}}
            )
        params, provenance = _head_parameters(
            spec, config, head_cls, hold_out(spec, config, head_cls, train, valid, device), fingerprint, overrides, tune_head
        )
        mlflow.log_params(tracking.flatten("head.", params))
        say(f"{len(members)} member(s), split {options.split}, head {config.head} ({provenance['source']} parameters)")
        member_scores, heldout, test_outputs = {}, {}, {}
        for member in members:
            score, heldout[member.name], test_outputs[member.name] = _train_member(
                spec, config, head_cls, params, member, pool, test, score_value, device
            )
            member_scores[member.name] = score
        result = _combine_and_finish(
            spec,
            config,
            options,
            members,
            pool,
            len(train),
            test,
            heldout,
            test_outputs,
            subsets,
            test_subsets,
            member_scores,
            params,
            provenance,
            run.run_id,
        )
    return result


def _background_subsets(samples, config, options, pool_samples, groups, n_train):
    """Cluster the source videos of the pool (training split only for --split background)."""
    from challenge.features import make_extractor
    from challenge.run.prepare import extract_all
    from ensembles.background import cluster_backgrounds

    extractor = make_extractor("background")
    store, _, digests, _ = extract_all(samples, config, extractors=[extractor])
    descriptors = _descriptors(samples, extractor, digests["background"], store)
    fitted_items = range(n_train) if options.split == "background" else range(len(pool_samples))
    unique = list(dict.fromkeys(groups[i] for i in fitted_items))
    first_item = {}  # one descriptor per source video: a pair's two crops share it
    for i in fitted_items:
        first_item.setdefault(groups[i], i)
    # trained on its subset ("in"), a member needs videos to fit and to stop on in every fold;
    # trained on everything else ("out"), any subset size will do
    min_size = max(3, round(0.05 * len(unique))) if options.background_train == "in" else 1
    clustering = cluster_backgrounds(
        np.stack([descriptors[pool_samples[first_item[g]].id] for g in unique]),
        options.members if options.split == "background" else None,
        config.seed,
        min_size,
    )
    subsets = clustering.assign(np.stack([descriptors[s.id] for s in pool_samples]))
    test_ids = [s.id for s in samples.split("test")]
    test_subsets = clustering.assign(np.stack([descriptors[i] for i in test_ids])) if test_ids else np.zeros(0, int)
    sizes = np.bincount(subsets[:n_train], minlength=clustering.k).tolist()
    say(f"background: {clustering.k} subsets (silhouette {clustering.silhouettes[clustering.k]:.3f}), training items per subset {sizes}")
    return subsets, test_subsets, clustering


def _descriptors(samples, extractor, digests, store) -> dict[str, np.ndarray]:
    missing = [s.id for s in samples if s.id not in digests]
    if missing:
        raise ChallengeError(
            f"{len(missing)} sample(s) have no video to describe the background of (for example {missing[:5]}); "
            "background subsets need each clip's or video's full frames: use --split folds."
        )
    return {s.id: np.asarray(store.require(extractor, digests[s.id], s.id).array()[0]) for s in samples}


def _head_parameters(spec, config, head_cls, fit, fingerprint, overrides, tune_head):
    """Tuned here (--tune), else the best tuned `challenge track` run on this data, else defaults."""
    from challenge.run.prepare import feature_keys, make_extractors
    from challenge.stores.reports import best_tuned_parameters
    from challenge.stores.tuning import tuning_key

    key = tuning_key(feature_keys(make_extractors(config)), head_cls)
    if config.tune:
        tuned = tune_head(spec, config, head_cls, fit, fingerprint, overrides, key)
        return tuned.params, tuned.provenance
    found = best_tuned_parameters(spec.name, key, fingerprint, config.tracking_uri)
    if found is not None:
        params, provenance = found
        say(f"head parameters from tuned run {provenance['run']} (validation {provenance['score']:.4f})")
        return {**head_cls.default_parameters(), **params, **overrides}, provenance
    say(
        f"[yellow]no tuned `challenge track {spec.name}` run with head {config.head} and features {','.join(config.features)} "
        "on this data: members use the head's defaults (pass --tune, or run `challenge track ... --tune` first)[/]"
    )
    return head_cls.default_parameters() | overrides, {"source": "defaults"}


def _train_member(spec, config, head_cls, params, member: Member, pool, test, score_value, device):
    """Fit on member.fit, stop on member.stop; returns (held-out score, held-out outputs per item,
    test outputs per item)."""
    import mlflow

    from challenge.stores import tracking

    with mlflow.start_run(run_name=member.name, nested=True):
        mlflow.set_tags(
            {
                "challenge.kind": "member",
                "role": member.role,
                "fold": str(member.fold),
                "subset": str(member.subset),
                **tracking.process_tags(),
            }
        )
        mlflow.log_params({"fit_items": len(member.fit), "stop_items": len(member.stop), "heldout_items": len(member.heldout)})
        head = head_cls(params, spec.problem, len(spec.labels), seed=config.seed, device=device)
        head.fit(pool.subset(member.fit), pool.subset(member.stop), score_value)
        tracking.log_history(head.history)
        heldout_data = pool.subset(member.heldout)
        outputs = item_outputs(spec.problem, head, heldout_data)
        score = evaluate(spec, np.concatenate(item_truth(spec.problem, heldout_data)), np.concatenate(outputs))
        mlflow.log_metric("heldout_score", score)
        say(
            f"member {member.name}: trained on {len(member.fit)} (+{len(member.stop)} to stop), held-out score {score:.4f} on {len(member.heldout)}"
        )
        test_out = item_outputs(spec.problem, head, test) if test is not None and len(test) else []
    return score, dict(zip(member.heldout, outputs)), test_out


def item_outputs(problem: Problem, head, data) -> list[np.ndarray]:
    """Per item a [rows, C] array: one row per clip, one per frame for frame tracks."""
    predicted = head.predict(data)
    if not problem.per_frame:
        return [row[None] for row in np.asarray(predicted)]
    return list(predicted)


def item_truth(problem: Problem, data) -> list[np.ndarray]:
    if not problem.per_frame:  # a clip's values, or its class index
        return [np.asarray(row, np.float64).reshape(1, -1) for row in data.targets]
    return list(data.labels)


def _combine_and_finish(
    spec,
    config,
    options,
    members,
    pool,
    n_train,
    test,
    heldout,
    test_outputs,
    subsets,
    test_subsets,
    member_scores,
    params,
    provenance,
    run_id,
) -> EnsembleResult:
    """The out-of-fold table: for each role, each evaluation item's prediction by the member of
    that role that held the item out; then what every ensemble does with it (ensembles.finish)."""
    items = evaluation_items(members)
    roles = list(dict.fromkeys(m.role for m in members))
    truth_items = item_truth(spec.problem, pool.subset(items))
    lengths = [len(t) for t in truth_items]
    row_items = np.repeat(items, lengths)
    by_role = {role: {} for role in roles}  # role -> item -> the held-out prediction of that role's member
    for member in members:
        by_role[member.role].update(heldout[member.name])
    table = RoleTable(
        roles,
        np.stack([np.concatenate([by_role[role][i] for i in items]) for role in roles]).astype(np.float64),
        np.concatenate(truth_items),
        lengths,
        row_items,
        np.repeat(subsets[items], lengths) if subsets is not None else np.full(len(row_items), -1),
        [next(m.subset for m in members if m.role == role) for role in roles],
        row_items >= n_train,  # the validation clips or videos
    )
    test_table = None
    if test is not None and len(test):
        test_lengths = [len(o) for o in test_outputs[members[0].name]]
        test_table = TestTable(
            test.ids,
            np.stack([np.concatenate(_role_test_outputs(members, test_outputs, role)) for role in roles]).astype(np.float64),
            test_lengths,
            np.repeat(test_subsets, test_lengths) if test_subsets is not None else np.full(sum(test_lengths), -1),
        )
    return finish_ensemble(
        spec,
        config,
        table,
        test_table,
        member_scores,
        run_id,
        options.own_weight,
        record={"split": options.split, "params": params, "provenance": provenance},
    )


def _role_test_outputs(members, test_outputs, role) -> list[np.ndarray]:
    """A role's test prediction: the mean over its members (one per fold, or the subset's one)."""
    own = [test_outputs[m.name] for m in members if m.role == role]
    return [np.mean([outputs[v] for outputs in own], axis=0) for v in range(len(own[0]))]
