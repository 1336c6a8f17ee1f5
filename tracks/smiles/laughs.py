"""Track smile-laugh: Laughs / Smiles / None per 1.2 s clip, audio-only, visual-only and late
fusion of the two. Model selection and early stopping use grouped K-fold cross-validation over
the training corpus's recordings (speakers); every run repeats over seeds and reports mean ± sd,
beside a logistic-regression baseline fitted on the same folds: cross-validated on the training
corpus, on its held-out test recordings, and zero-shot on a second corpus (both ways on request)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from challenge.config import RunConfig, RunResult
from challenge.errors import ChallengeError
from challenge.progress import say
from tracks.smiles.labels import CLASSES, INTENSITY_ROWS, cut_clips

CROSS_VALIDATED, HELD_OUT, ZERO_SHOT = "cross-validated", "held-out", "zero-shot"
BASELINE = "logistic regression, C=1, balanced classes"  # on eGeMAPS (mean and std over the clip) and the visual features


@dataclass
class Corpus:
    root: Path
    recordings: list
    reference: str  # the annotator whose labels are the truth
    clips: dict[str, list]  # split -> clips
    features: dict  # recording -> RecordingFeatures
    widths: dict[str, int]  # modality -> feature width
    keys: dict[str, str]  # feature cache keys

    @property
    def name(self) -> str:
        return self.root.name

    def groups(self, clips) -> list[str]:
        """Each clip's cross-validation group: its recording's speaker where splits.csv names one."""
        speaker = {r.id: r.speaker or r.id for r in self.recordings}
        return [speaker[c.recording] for c in clips]


def read_corpus(root: Path, config: RunConfig) -> Corpus:
    """A corpus's recordings, reference annotator, clips by split and features."""
    from challenge.media import video_frame_count, video_frame_rate
    from tracks.smiles.clip_windows import recording_features
    from tracks.smiles.elan import ElanScheme, read_smiles_corpus

    recordings, reference = read_smiles_corpus(root, ElanScheme.load(Path(config.smiles.scheme)) if config.smiles.scheme else None)
    clips = {}
    for r in recordings:
        duration = video_frame_count(r.video) / video_frame_rate(r.video)
        clips.setdefault(r.split, []).extend(
            cut_clips(r.id, r.annotations[reference], duration, config.smiles.clip_length, config.smiles.clip_hop)
        )
    features, widths, keys = recording_features(recordings, config)
    return Corpus(Path(root), recordings, reference, clips, features, widths, keys)


def read_recordings(root: Path, on_missing: str = "error"):
    """The corpus's recordings as samples (for `challenge features extract`)."""
    from tracks.smiles.clip_windows import recording_samples
    from tracks.smiles.elan import read_smiles_corpus

    return recording_samples(read_smiles_corpus(Path(root))[0])


def run_smile_laugh(spec, config: RunConfig) -> RunResult:
    """One direction, or with --both-ways both: train on --data and score zero-shot on
    --eval-data, then the reverse."""
    if not config.smiles.both_ways:
        return _run_one_way(spec, config)
    if not config.smiles.eval_data:
        raise ChallengeError("--both-ways needs --eval-data B: it trains on each corpus and scores zero-shot on the other.")
    forward = _run_one_way(spec, config)
    reverse = config.model_copy(
        update={"data": config.smiles.eval_data, "smiles": config.smiles.model_copy(update={"eval_data": config.data, "both_ways": False})}
    )
    say(f"the other way: training on {reverse.data}, zero-shot on {reverse.smiles.eval_data}")
    backward = _run_one_way(spec, reverse)
    a, b = Path(config.data).name, Path(config.smiles.eval_data).name
    details = {f"{a}->{b} {k}": v for k, v in forward.details.items()} | {f"{b}->{a} {k}": v for k, v in backward.details.items()}
    result = RunResult(forward.run_id, forward.score, details, forward.params, None)
    result.trials_run, result.tuned = forward.trials_run + backward.trials_run, forward.tuned and backward.tuned
    return result


def _run_one_way(spec, config: RunConfig) -> RunResult:
    import mlflow

    from challenge.heads import get_head
    from challenge.postprocess import PostProcess
    from challenge.run.context import RunContext
    from challenge.run.selection import fit_head
    from challenge.stores.tuning import tuning_key
    from challenge.training.control import shuffled
    from challenge.training.grouped_folds import grouped_folds
    from challenge.training.normalise import Normaliser
    from tracks.smiles.clip_windows import ClipWindows, PooledClips
    from tracks.smiles.cross_validation import cross_validate

    head_cls = get_head(config.head)
    context = RunContext(spec, config)
    device = context.device
    corpus = read_corpus(Path(config.data), config)
    dev_clips = corpus.clips.get("train", []) + corpus.clips.get("valid", [])
    if not dev_clips:
        raise ChallengeError(f"{corpus.root}/splits.csv: no train or valid recordings to cross-validate on.")
    modalities = [m for m in ("audio", "visual") if m in corpus.widths]
    sets = {CROSS_VALIDATED: (corpus, dev_clips)}  # every clip set's pooled features, read once
    if corpus.clips.get("test"):
        sets[HELD_OUT] = (corpus, corpus.clips["test"])
    if config.smiles.eval_data:
        other = read_corpus(Path(config.smiles.eval_data), config)
        sets[ZERO_SHOT] = (other, [c for split in other.clips.values() for c in split])
    pooled = {name: PooledClips.of(c.features, clips, modalities, config.smiles.pooling) for name, (c, clips) in sets.items()}
    end_to_end = head_cls.reads == "media"
    # an end-to-end head reads each clip's span of its recording through the track's loader; the
    # pooled features stay for the baseline (and --features still names what it pools)
    if end_to_end:
        data = _media_sets(spec, head_cls, sets, modalities)
    elif head_cls.sequences:  # each clip's rows of its recording's sequences, one per modality (the fusion transformer)
        data = {name: ClipWindows.of(c.features, clips, modalities) for name, (c, clips) in sets.items()}
    else:
        data = pooled
    baseline = _baseline_sets(config, sets, pooled)
    if config.smiles.corpus_norm and ZERO_SHOT in data:  # the other corpus standardised with its own statistics (no labels used)
        for part in (data[ZERO_SHOT], baseline[ZERO_SHOT]) if not end_to_end else (baseline[ZERO_SHOT],):
            part.own_normaliser = part.fit_normalisation()
    groups = corpus.groups(dev_clips)
    what = "speakers" if any(r.speaker for r in corpus.recordings) else "recordings"
    seeds = [config.seed + i for i in range(config.seeds or 1)]
    score = present_macro_f1_of_probabilities
    fingerprint = _clips_fingerprint(corpus, data[CROSS_VALIDATED], config)
    key = tuning_key(corpus.keys, head_cls)
    rows = []
    checkpoint = None
    if end_to_end:  # each fold's training keeps a checkpoint per epoch: the same command resumes a killed run
        from challenge.run.protocols import checkpoint_root, training_key

        root = checkpoint_root(config)
        checkpoint = lambda params, fold_seed, train: root / training_key(spec, head_cls.name, params, fold_seed, train) / "last.pt"  # noqa: E731
    params = {
        "seeds": len(seeds),
        "folds": config.smiles.folds,
        "fold_groups": what,
        "clip_length": config.smiles.clip_length,
        "clip_hop": config.smiles.clip_hop,
        "eval_data": config.smiles.eval_data or "",
        **{f"clips.{name}": len(d) for name, d in data.items()},
    }
    with context.start(
        fingerprint, corpus.keys, name=context.default_name(spec.name), params=params, tuning_key=key, reference_annotator=corpus.reference
    ) as run:
        out = run.out
        say(f"{len(dev_clips)} clips of {len(set(groups))} {what} in {config.smiles.folds} grouped folds; {len(seeds)} seed(s): {seeds}")
        fitted = None
        for seed in seeds:
            folds = grouped_folds(groups, data[CROSS_VALIDATED].targets, config.smiles.folds, seed, what)
            # control: each training clip learns another clip's label; every score uses the truth
            fit_targets = shuffled(data[CROSS_VALIDATED].targets, seed) if config.shuffle_labels else None

            def fit(params, report=None, seed=seed, folds=folds, fit_targets=fit_targets):
                return cross_validate(
                    head_cls, params, data[CROSS_VALIDATED], folds, seed, score, len(CLASSES), device, fit_targets, report, checkpoint
                )

            if fitted is None:  # tuned (or defaults) on the first seed's folds, then repeated with the same parameters
                fitted = fit_head(spec, config, head_cls, fit, fingerprint, key)
                model = fitted.head
            else:
                model = fit(fitted.params)[1]
            outputs = _outputs(model, data)
            seed_rows = _figures("model", outputs, data, seed)
            for modality_set in _baseline_modalities(modalities):
                parts = {n: d.only(modality_set) for n, d in baseline.items()}
                fitted_baseline = cross_validate(
                    get_head("logistic"), {"C": 1.0}, parts[CROSS_VALIDATED], folds, seed, score, len(CLASSES)
                )[1]
                seed_rows += _figures("baseline", _outputs(fitted_baseline, parts), parts, seed)
            _log_seed(spec, seed, seed_rows)
            rows += seed_rows
            if seed == seeds[0]:
                _reports(model, outputs, data, sets, out, seed)
        table = pd.DataFrame(rows)
        table.to_csv(out / "seeds.csv", index=False)
        summary = _summarise(table)
        summary.to_csv(out / "summary.csv", index=False)
        gains = _gains(table)
        gains.to_csv(out / "gain_over_baseline.csv", index=False)
        _print_summary(summary, gains, data, corpus, config, len(seeds), what)
        headline_set = HELD_OUT if HELD_OUT in data else CROSS_VALIDATED
        headline_modality = gains[gains["set"] == headline_set]["modality"].iloc[-1]
        headline = gains[(gains["set"] == headline_set) & (gains["modality"] == headline_modality)].iloc[0]
        for _, row in summary.iterrows():
            stem = f"{row['set'].replace('-', '_')}.{row['modality']}.{'' if row['who'] == 'model' else 'baseline.'}{row['figure']}"
            mlflow.log_metrics({f"{stem}.mean": row["mean"], f"{stem}.sd": row["sd"]})
        for _, row in gains.iterrows():
            mlflow.log_metrics(
                {
                    f"gain_over_baseline.{row['set'].replace('-', '_')}.{row['modality']}.mean": row["gain"],
                    f"gain_over_baseline.{row['set'].replace('-', '_')}.{row['modality']}.sd": row["gain_sd"],
                }
            )
        mlflow.log_metrics(
            {
                "score": headline["model"],
                "score.sd": headline["model_sd"],
                "baseline.score": headline["baseline"],
                "gain_over_baseline": headline["gain"],
                "gain_over_baseline.sd": headline["gain_sd"],
            }
        )
        (out / "scores.json").write_text(
            json.dumps(
                {
                    "trained_on": str(corpus.root),
                    "zero_shot_on": config.smiles.eval_data,
                    "headline": {"set": headline_set, "modality": headline_modality, **headline.drop(["set", "modality"]).to_dict()},
                    "summary": summary.to_dict("records"),
                    "gains": gains.to_dict("records"),
                },
                indent=1,
                default=float,
            )
        )
        run.record(fitted.params, fitted.provenance)
        if end_to_end:  # each fold model fine-tuned its own backbone (the first seed's)
            for k, fold in enumerate(fitted.head.models):
                fold.head.save_backbone(out / "backbone" / f"fold-{k}")
            say(
                f"fine-tuned backbones: {(out / 'backbone').resolve()}/fold-K, one per fold (logged with the run; pass one as "
                f"{head_cls.model_flag} to extract features from it)"
            )
        mlflow.log_artifacts(str(out))
        # each fold model carries its own normaliser (none for media)
        width = pooled[CROSS_VALIDATED].raw.shape[1]
        identity = None if end_to_end or head_cls.sequences else Normaliser(np.zeros(width, np.float32), np.ones(width, np.float32))
        run.save_model(fitted.head, PostProcess.for_track(spec), identity, corpus.keys)
    say(f"reports: {out.resolve()} (summary.csv, seeds.csv, gain_over_baseline.csv, per-class tables, confusion matrices, heatmaps, t-SNE)")
    details = {f"{r['set']} {r['modality']}": r["model"] for _, r in gains.iterrows()}
    details |= {f"{r['set']} {r['modality']} baseline": r["baseline"] for _, r in gains.iterrows()}
    result = RunResult(run.run_id, float(headline["model"]), details, fitted.params, None)
    result.trials_run, result.tuned, result.seeds = fitted.ran, fitted.from_study, len(seeds)
    return result


def _media_sets(spec, head_cls, sets: dict, modalities: list[str]) -> dict:
    """Every clip set through the track's loader for the head's medium. The baseline beside the
    head reads the same modalities: eGeMAPS for the sound, the run's visual features for faces."""
    from challenge.heads.end_to_end import MODALITY_OF_MEDIUM

    loader = spec.media.get(head_cls.medium)
    if loader is None:
        raise ChallengeError(
            f"--head {head_cls.name} reads {head_cls.medium} media, which the {spec.name} track does not supply "
            f"(it supplies: {', '.join(spec.media) or 'none'})."
        )
    if "visual" in MODALITY_OF_MEDIUM[head_cls.medium] and "visual" not in modalities:
        raise ChallengeError(
            f"--head {head_cls.name} reads faces as well as sound, and its baseline needs visual features beside eGeMAPS: "
            "add a visual extractor to --features (e.g. --features compare,yamnet,mae, the default)."
        )
    return {name: loader(corpus, clips) for name, (corpus, clips) in sets.items()}


def _log_seed(spec, seed: int, rows: list[dict]) -> None:
    """One seed's figures as a nested run of the track's run (challenge.run.protocols: seeds are
    nested runs everywhere); the parent run holds their mean ± sd."""
    import mlflow

    with mlflow.start_run(run_name=f"seed-{seed}", nested=True):
        mlflow.set_tags({"challenge.kind": "seed", "track": spec.name, "seed": seed})
        mlflow.log_metrics(
            {
                f"{r['set'].replace('-', '_')}.{r['modality']}.{'' if r['who'] == 'model' else 'baseline.'}{r['figure']}": float(r["value"])
                for r in rows
            }
        )


def present_macro_f1_of_probabilities(truth: np.ndarray, probabilities: np.ndarray) -> float:
    """The selection score: macro F1 over the classes present in this truth."""
    from challenge.metrics import present_macro_f1

    return present_macro_f1(np.asarray(truth, int), probabilities.argmax(1))


def _baseline_sets(config: RunConfig, sets: dict, data: dict) -> dict:
    """The baseline's clip sets: eGeMAPS (openSMILE's eGeMAPSv02, whatever the run configures)
    pooled to mean and std for the voice, extracted for the baseline when the run does not use it,
    and the run's own visual features pooled the same way, on the same clips. It stays fixed, so a
    model's gain over it is comparable from run to run."""
    from tracks.smiles.clip_windows import PooledClips, pooled_clips, recording_features

    pinned = {**config.extractors.get("egemaps", {}), "feature_set": "eGeMAPSv02"}
    egemaps_config = config.model_copy(update={"features": ["egemaps"], "extractors": {**config.extractors, "egemaps": pinned}})
    egemaps = {}
    out = {}
    for name, (corpus, clips) in sets.items():
        if corpus.root not in egemaps:
            egemaps[corpus.root] = recording_features(corpus.recordings, egemaps_config)[0]
        parts = {"audio": pooled_clips(egemaps[corpus.root], clips, "audio")}
        if "visual" in data[name].blocks:
            parts["visual"] = pooled_clips(corpus.features, clips, "visual")
        out[name] = PooledClips.side_by_side(parts, data[name].targets)
    return out


def _baseline_modalities(modalities: list[str]) -> list[list[str]]:
    """audio (eGeMAPS), visual, and both together when the run has both."""
    sets = [["audio"]] + ([["visual"]] if "visual" in modalities else [])
    return sets + ([["audio", "visual"]] if "visual" in modalities and "audio" in modalities else [])


def _modality_name(name: str) -> str:
    return "audiovisual" if name in ("audio+visual", "visual+audio") else name


def _outputs(model, data: dict) -> dict[str, dict[str, np.ndarray]]:
    """Per clip set, each modality output's probabilities: cross-validated from the out-of-fold
    predictions, the others from the fold models' average."""
    return {name: model.out_of_fold if name == CROSS_VALIDATED else model.predict_each(part) for name, part in data.items()}


def _figures(who: str, outputs: dict, data: dict, seed: int) -> list[dict]:
    """Rows (set, modality, who, figure, seed, value) for every clip set and modality output."""
    from challenge.metrics import classification_figures

    rows = []
    for name, part in data.items():
        for modality, probabilities in outputs[name].items():
            for figure, value in classification_figures(part.targets, probabilities.argmax(1), len(CLASSES)).items():
                rows.append({"set": name, "modality": _modality_name(modality), "who": who, "figure": figure, "seed": seed, "value": value})
    return rows


def _summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd (ddof=1; 0 with one seed) and count of every figure over the seeds."""
    grouped = table.groupby(["set", "modality", "who", "figure"], sort=False)["value"]
    return grouped.agg(mean="mean", sd=lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0, seeds="count").reset_index()


def _gains(table: pd.DataFrame) -> pd.DataFrame:
    """Per clip set and modality: the model's and the baseline's macro F1 (present classes), and
    the gain of the model over the baseline seed by seed (same folds), as mean ± sd."""
    macro = (
        table[table["figure"] == "macro_f1"]
        .pivot_table(index=["set", "modality", "seed"], columns="who", values="value", sort=False)
        .dropna()
    )
    macro["gain"] = macro["model"] - macro["baseline"]
    grouped = macro.groupby(level=["set", "modality"], sort=False)
    sd = lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0  # noqa: E731
    out = pd.DataFrame(
        {
            "model": grouped["model"].mean(),
            "model_sd": grouped["model"].agg(sd),
            "baseline": grouped["baseline"].mean(),
            "baseline_sd": grouped["baseline"].agg(sd),
            "gain": grouped["gain"].mean(),
            "gain_sd": grouped["gain"].agg(sd),
        }
    ).reset_index()
    several = grouped["gain"].count().to_numpy() > 1
    # the seeds changed nothing (leave-one-recording-out folds are the same for every seed, and a
    # kept linear start is deterministic): an sd of 0 is no spread, and nothing is "beaten by one sd"
    identical = several & (grouped["model"].agg(sd).to_numpy() < 1e-12) & (grouped["baseline"].agg(sd).to_numpy() < 1e-12)
    out["verdict"] = np.where(
        out["gain"] <= 0,
        "DOES NOT BEAT the baseline",
        np.where(
            ~several,
            "above the baseline (one seed: no spread, use --seeds 3 or more)",
            np.where(
                identical,
                "above the baseline; every seed gave the same figures, so there is no spread "
                "to judge it by (more recordings give the folds room to differ)",
                np.where(out["gain"] > out["gain_sd"], "beats the baseline by more than one sd", "above the baseline, within one sd"),
            ),
        ),
    )
    return out


def _print_summary(
    summary: pd.DataFrame, gains: pd.DataFrame, data: dict, corpus: Corpus, config: RunConfig, seeds: int, what: str
) -> None:
    figure = summary.set_index(["set", "modality", "who", "figure"])
    control = "  CONTROL RUN (shuffled training labels)" if config.shuffle_labels else ""
    say(
        f"macro F1 over the classes present, mean ± sd over {seeds} seed(s); baseline: {BASELINE} on pooled eGeMAPS (audio) "
        f"and pooled visual features, same folds{control}"
    )
    for name in data:
        where = {
            CROSS_VALIDATED: f"{corpus.name}, out-of-fold over {config.smiles.folds} folds of {what}",
            HELD_OUT: f"{corpus.name} test recordings",
            ZERO_SHOT: f"{Path(config.smiles.eval_data or '').name}, every recording",
        }[name]
        present = int(figure.loc[(name, gains[gains["set"] == name]["modality"].iloc[0], "model", "classes_present"), "mean"])
        say(f"{name} ({where}; {len(data[name])} clips, {present} of {len(CLASSES)} classes present):")
        for _, g in gains[gains["set"] == name].iterrows():
            f = lambda key: figure.loc[(name, g["modality"], "model", key)]  # noqa: E731
            say(
                f"  {g['modality']:<12} model {g['model']:.4f} ± {g['model_sd']:.4f}  baseline {g['baseline']:.4f} ± {g['baseline_sd']:.4f}  "
                f"gain {g['gain']:+.4f} ± {g['gain_sd']:.4f}: {g['verdict']}  "
                f"(micro F1 {f('micro_f1')['mean']:.4f}, kappa {f('kappa')['mean']:.4f}, 3-class macro F1 {f('macro_f1_all_classes')['mean']:.4f})"
            )


def _clips_fingerprint(corpus: Corpus, dev, config: RunConfig) -> str:
    """The data a study tunes on: the recordings, the clip windows, the labels and the folds."""
    import hashlib

    from tracks.smiles.clip_windows import recording_samples

    hasher = hashlib.sha256(
        f"{recording_samples(corpus.recordings).fingerprint()}/{config.smiles.clip_length}/{config.smiles.clip_hop}/"
        f"folds{config.smiles.folds}".encode()
    )
    hasher.update(np.ascontiguousarray(dev.targets, dtype=np.int64).tobytes())
    return hasher.hexdigest()[:16]


def _reports(model, set_outputs: dict, data: dict, sets: dict, out: Path, seed: int) -> None:
    """The first seed's per-class tables, titled confusion matrices (every modality), intensity
    heatmap and t-SNE of every clip set."""
    from challenge.plots import confusion_matrix_plot
    from tracks.smiles.analyses import classification_table, intensity_heatmap, tsne_plot

    for name, part in data.items():
        corpus, clips = sets[name]
        tag = name.replace("-", "_")
        outputs = set_outputs[name]
        for modality, probabilities in outputs.items():
            decided = probabilities.argmax(1)
            classification_table(part.targets, decided, CLASSES).to_csv(out / f"{tag}_{modality}_scores.csv", index=False)
            confusion_matrix_plot(
                part.targets,
                decided,
                CLASSES,
                out / f"{tag}_{modality}_confusion.png",
                title=f"{modality}, {name}, corpus {corpus.name}, n={len(part)} clips, seed {seed}",
            )
        final = list(outputs)[-1]
        decided = outputs[final].argmax(1)
        intensities = [c.intensity for c in clips]
        intensity_heatmap(
            intensities,
            decided,
            INTENSITY_ROWS,
            CLASSES,
            out / f"{tag}_{final}_intensity_heatmap.png",
            title=f"{final}, {name}, corpus {corpus.name}: prediction by intensity (row %)",
        ).to_csv(out / f"{tag}_{final}_intensity_heatmap.csv")
        embeddings = model.embed(part)
        if embeddings is not None and len(part) > 5:
            tsne_plot(
                embeddings,
                intensities,
                out / f"{tag}_tsne.png",
                seed,
                title=f"t-SNE of {final} clip embeddings, {name}, corpus {corpus.name}",
            )
