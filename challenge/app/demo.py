"""`challenge demo`: the README's main job on embedded data, with no download."""

from __future__ import annotations

from pathlib import Path

from challenge.progress import say


def run_demo(directory: Path, trials: int, timeout: float | None = 150) -> None:
    from challenge.config import load_config
    from challenge.registry import get_track
    from challenge.run.runner import run_track
    from challenge.synthetic.stand_ins import write_stand_ins
    from tracks.hume.demo import write_emi_demo

    data = Path(directory) / "emi"
    if not (data / "valid_split.csv").exists():
        say(f"writing the EMI demo dataset to {data}")
        write_emi_demo(data)
    # no weights can be downloaded here: a small random-weight wav2vec2 exercises the real
    # loading and extraction path; eGeMAPS (a real model, shipped with opensmile) carries the
    # signal. With real weights pass --audio-model hf:facebook/wav2vec2-base instead.
    model = write_stand_ins(data, [data])["audio_model"]
    spec = get_track("emi")
    config = load_config(
        None,
        {
            "track": "emi",
            "data": str(data),
            "features": ["wav2vec2", "egemaps"],
            "audio_model": str(model),
            "head": "lstm",
            "tune": True,
            "trials": trials,
            "timeout": timeout,
            "epochs": 25,
        },
        spec,
    )
    from challenge.run.finish import result_lines

    result = run_track(spec, config)
    print("\n" + "\n".join(result_lines(spec, result)))
    print(f"submission (validated): {result.submission}")
    print(f"trials run now: {result.trials_run} (the study is kept in optuna/studies.db: running the demo again resumes it)")
    print("browse the runs:  .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db")
    print("compare runs:     .venv/bin/challenge runs emi")
