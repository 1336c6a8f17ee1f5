import pytest
from typer.testing import CliRunner

from challenge.app.cli import app

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo-data", "features", "track", "ensemble", "validate", "runs", "demo"):
        assert command in result.output


@pytest.mark.parametrize(
    "command", [["demo-data"], ["features", "extract"], ["features", "ls"], ["track"], ["ensemble"], ["validate"], ["runs"], ["demo"]]
)
def test_every_command_has_help_with_examples(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output, result.output


def test_unknown_track_is_rejected_with_the_valid_list():
    result = runner.invoke(app, ["demo-data", "/tmp/x", "--track", "emo"])
    assert result.exit_code != 0 and "emi" in result.output and "expr" in result.output


def test_features_extract_and_ls(emi_root, store_root):
    result = runner.invoke(app, ["features", "extract", "--data", str(emi_root), "--track", "emi", "--extractor", "egemaps", "-q"])
    assert result.exit_code == 0, result.output
    assert "egemaps: 22 computed, 0 cached" in result.output
    again = runner.invoke(app, ["features", "extract", "--data", str(emi_root), "--track", "emi", "--extractor", "egemaps", "-q"])
    assert "0 computed, 22 cached" in again.output
    listing = runner.invoke(app, ["features", "ls"])
    assert "egemaps" in listing.output and "22" in listing.output and "25 named" in listing.output  # opensmile's column names


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["track", "emi"], "no dataset: pass --data DIR"),
        (["ensemble", "emi"], "no dataset: pass --data DIR"),
        (["multitask"], "no dataset: pass --data DIR"),
        (["track", "emi", "--data", "/nowhere", "--finetune", "--head", "ridge"], "--finetune picks the head wav2vec2-lstm; --head ridge"),
        (["track", "vd", "--data", "/nowhere", "--finetune"], "the vd track names no end-to-end head"),
        (["track", "emi", "--data", "/nowhere", "--workers", "2"], "--workers K shares one Optuna study between K processes: add --tune"),
    ],
)
def test_run_commands_share_one_settings_path_and_refuse_before_reading_data(arguments, message, tmp_path, monkeypatch):
    """track, ensemble and multitask resolve their settings through one function (options over
    --config over the track's defaults, then the dataset check): each refusal comes before any
    data is read (/nowhere does not exist)."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, arguments)
    assert result.exit_code != 0 and message in str(result.exception), (result.output, result.exception)


def test_demo_data_for_affwild_tracks(tmp_path):
    result = runner.invoke(app, ["demo-data", str(tmp_path / "aw"), "--track", "va", "--train", "2", "--valid", "1", "--test", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert (
        (tmp_path / "aw" / "prediction_files_format" / "CVPR_6th_ABAW_VA_test_set_sample.txt")
        .read_text()
        .startswith("image_location,valence,arousal\n")
    )


def test_an_error_raised_while_cleaning_up_after_ctrl_c_is_still_an_interrupt():
    """Seen in CI: Ctrl-C inside an MLflow write, then MLflow's own clean-up found its SQLite file
    still locked and raised; the command must still end as interrupted (exit 130, no traceback)."""
    from challenge.app.cli import _raised_by_an_interrupt

    def cleanup_fails_after_ctrl_c():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            try:
                raise OSError("database is locked")
            except OSError as error:
                raise RuntimeError("MlflowException: database is locked") from error

    with pytest.raises(RuntimeError) as raised:
        cleanup_fails_after_ctrl_c()
    assert _raised_by_an_interrupt(raised.value)
    assert not _raised_by_an_interrupt(RuntimeError("an error of its own"))
