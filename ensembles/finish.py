"""The end of every ensemble, whatever its members are (members trained here, or finished runs):
the out-of-fold table of role outputs -> the combination rules, cross-fitted -> the chosen rule
-> smoothing (frame tracks) -> scores, MLflow, `ensemble.json` and the validated submission.

    outputs[r]: role r's [rows, C] on the evaluation rows; rows of one item (clip or video) are
    contiguous, `lengths` rows per item, in the order of `truth`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from challenge.postprocess import PostProcess
from challenge.progress import say
from challenge.track import Problem, TrackSpec
from ensembles.combine import RULES, Context, applicable_rules, cross_fit


@dataclass
class EnsembleResult:
    run_id: str
    score: float  # the submitted combination's out-of-fold score (smoothed for frame tracks)
    best_member: float  # the best role's out-of-fold score
    rule: str
    steps: dict[str, float]  # score after each step: best member, combination, smoothing
    member_scores: dict[str, float]
    submission: Path | None
    valid_score: float = float("nan")  # the same outputs scored on the validation split only
    role_scores: dict[str, float] = field(default_factory=dict)


@dataclass
class RoleTable:
    """The evaluation rows and what each role predicted for them, held out."""

    roles: list[str]
    outputs: np.ndarray  # [R, rows, C]
    truth: np.ndarray  # [rows, ...]
    lengths: list[int]  # rows per evaluation item
    row_items: np.ndarray  # [rows] the item each row belongs to
    row_subsets: np.ndarray  # [rows] its background subset (-1: none)
    role_subsets: list[int | None]  # the subset each role was trained for (None: all data)
    valid_rows: np.ndarray  # [rows] bool: rows of the validation split (comparable with a single run)


@dataclass
class TestTable:
    ids: list[str]
    outputs: np.ndarray  # [R, rows, C], the roles in RoleTable's order
    lengths: list[int]
    row_subsets: np.ndarray


def evaluate(spec: TrackSpec, truth: np.ndarray, outputs: np.ndarray) -> float:
    """The track's score; AU thresholds tuned on the same rows, as a single run does."""
    return PostProcess.for_track(spec).score(spec, truth, outputs).value


def finish_ensemble(
    spec: TrackSpec,
    config,
    table: RoleTable,
    test: TestTable | None,
    member_scores: dict[str, float],
    run_id: str,
    own_weight: float = 2.0,
    record: dict | None = None,
) -> EnsembleResult:
    """Combine, choose, smooth, report, log and write; `record` adds to ensemble.json."""
    import mlflow

    from challenge.run.finish import out_dir

    outputs, truth = table.outputs, table.truth
    role_scores = {role: evaluate(spec, truth, outputs[r]) for r, role in enumerate(table.roles)}
    context = Context(spec.problem, lambda t, o: evaluate(spec, t, o), table.role_subsets, own_weight)
    combined, rule_scores = {}, {}
    for name in applicable_rules(context):
        combined[name] = cross_fit(RULES[name], outputs, truth, table.row_items, table.row_subsets, context, seed=config.seed)
        rule_scores[name] = evaluate(spec, truth, combined[name])
    rule = max(rule_scores, key=lambda n: (rule_scores[n], n == "mean"))  # ties: the simplest
    best_role = max(role_scores, key=role_scores.get)
    steps = {"best_member": role_scores[best_role], "combination": rule_scores[rule]}
    post = PostProcess.for_track(spec, config.tune_threshold)  # fitted on the out-of-fold outputs, as a single run fits it on validation
    fitted = post.fit(spec, truth, combined[rule], table.lengths).value
    final = post.smooth(combined[rule], table.lengths)
    if post.smooths:
        steps["smoothing"] = fitted
    score = list(steps.values())[-1]
    on_valid = table.valid_rows
    valid_score = evaluate(spec, truth[on_valid], final[on_valid]) if on_valid.any() else float("nan")
    _report(role_scores, rule_scores, rule, steps, post.sigma)
    say(f"on the validation {spec.items} alone: {valid_score:.4f}")
    mlflow.log_metrics(
        {
            "score": score,
            "score_unsmoothed": rule_scores[rule],
            "smoothing.sigma": post.sigma,
            "score_valid_items": valid_score,
            **{f"member.{k}": v for k, v in member_scores.items()},
            **{f"role.{k}": v for k, v in role_scores.items()},
            **{f"combine.{k}": v for k, v in rule_scores.items()},
            **{f"smoothing.score_sigma_{k:g}": v for k, v in post.scores_by_sigma.items()},
            **{f"gain_over_best.{k}": v - steps["best_member"] for k, v in role_scores.items()},
            "gain.combination": steps["combination"] - steps["best_member"],
            **({"gain.smoothing": steps["smoothing"] - steps["combination"]} if "smoothing" in steps else {}),
        }
    )
    beats = score > steps["best_member"]
    mlflow.set_tags({"ensemble.rule": rule, "ensemble.beats_best_member": str(beats), "ensemble.best_role": best_role})
    submission = None
    out = out_dir(config, spec, run_id)
    if test is not None and len(test.ids):
        state = RULES[rule].fit(outputs, truth, context)
        combined_test = RULES[rule].apply(state, test.outputs, test.row_subsets, context)
        submission = _write_submission(spec, config, test, combined_test, post, out)
    (out / "ensemble.json").write_text(
        json.dumps(
            {
                "rule": rule,
                "score": score,
                "steps": steps,
                "roles": role_scores,
                "rules": rule_scores,
                "members": member_scores,
                "post_processing": post.state(),
                "score_valid_items": valid_score,
                "beats_best_member": beats,
                **(record or {}),
            },
            indent=1,
            default=str,
        )
    )
    mlflow.log_artifacts(str(out))
    return EnsembleResult(run_id, score, steps["best_member"], rule, steps, member_scores, submission, valid_score, role_scores)


def _report(role_scores, rule_scores, rule, steps, sigma) -> None:
    say("out-of-fold scores by role: " + ", ".join(f"{k} {v:.4f}" for k, v in role_scores.items()))
    say("combination rules (cross-fitted): " + ", ".join(f"{k} {v:.4f}" for k, v in rule_scores.items()) + f"; chosen: {rule}")
    if "smoothing" in steps:
        say(f"smoothing sigma {sigma:g} frames: {steps['combination']:.4f} -> {steps['smoothing']:.4f}")
    final = list(steps.values())[-1]
    if final <= steps["best_member"]:
        say(
            f"[yellow]the ensemble ({final:.4f}) does not beat its best member ({steps['best_member']:.4f}) on the held-out rows; "
            "its file is still the one written, since choosing on test data is not allowed[/]"
        )


def _write_submission(spec, config, test: TestTable, combined_test, post, out) -> Path:
    from challenge.run.finish import submit, write_frames

    if spec.problem == Problem.CLIP_CLASSIFICATION:  # the file holds probabilities beside the decision
        return submit(config, lambda: spec.write_submission(Path(config.data), out, test.ids, post.calibrate(combined_test)))
    if not spec.problem.per_frame:
        return submit(config, lambda: spec.write_submission(Path(config.data), out, test.ids, post.apply(combined_test, test.lengths)))
    per_video = np.split(combined_test, np.cumsum(test.lengths)[:-1])
    return submit(config, lambda: write_frames(spec, config, test.ids, per_video, post, out))
