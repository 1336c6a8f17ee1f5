import numpy as np
import pytest

from challenge.errors import ChallengeError
from submissions.emi import validate_emi, write_emi

HEADER = "Filename,Admiration,Amusement,Determination,Empathic Pain,Excitement,Joy"
IDS = ["12660", "12661", "12662"]


def _file(tmp_path, lines):
    path = tmp_path / "predictions.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(ids=IDS):
    return [f"{i},0.1,0.2,0.3,0.4,0.5,0.6" for i in ids]


def test_written_file_is_valid(tmp_path):
    path = write_emi(tmp_path / "p.csv", IDS, np.full((3, 6), 0.5))
    assert validate_emi(path, IDS) == []
    assert path.read_text().splitlines()[0] == HEADER


@pytest.mark.parametrize(
    "lines, expected",
    [
        ([HEADER, *_rows(IDS[:2])], "missing clip (1):\n  - 12662"),
        ([HEADER, *_rows([*IDS, "12663"])], "clip not in the test set (1):\n  - 12663 (line 5)"),
        (["Filename,Admiration,Amusement,Determination,EmpathicPain,Excitement,Joy", *_rows()], "header (1):\n  - line 1 is"),
        ([HEADER, "12660,0.1,nan,0.3,0.4,0.5,0.6", *_rows(IDS[1:])], "non-finite value (1):\n  - line 2: Amusement = nan"),
        ([HEADER, "12660,0.1,0.2,1.3,0.4,0.5,0.6", *_rows(IDS[1:])], "value out of [0, 1] (1):\n  - line 2: Determination = 1.3"),
        ([HEADER, "12660.mp4,0.1,0.2,0.3,0.4,0.5,0.6", *_rows(IDS[1:])], "clip id (1):\n  - line 2: '12660.mp4' is not a 5-digit clip id"),
        ([HEADER, *_rows(), "12660,0.1,0.2,0.3,0.4,0.5,0.6"], "duplicate clip (1):\n  - line 5: 12660 already on line 2"),
        ([HEADER, "12660,0.1,0.2", *_rows(IDS[1:])], "column count (1):\n  - line 2: 3 columns, expected 7"),
    ],
)
def test_validator_names_each_problem(tmp_path, lines, expected):
    problems = validate_emi(_file(tmp_path, lines), IDS)
    assert any(expected in p for p in problems), problems


def test_validator_lists_at_most_ten_of_a_kind(tmp_path):
    ids = [f"{12660 + i:05d}" for i in range(25)]
    problems = validate_emi(_file(tmp_path, [HEADER]), ids)
    assert problems[0].startswith("missing clip (25)") and problems[0].count("\n  - ") == 10 and "and 15 more" in problems[0]


def test_writer_refuses_and_removes_an_invalid_file(tmp_path):
    with pytest.raises(ChallengeError, match="refused to keep .* fails validation"):
        write_emi(tmp_path / "p.csv", ["12660", "bad-id"], np.full((2, 6), 0.5))
    assert not (tmp_path / "p.csv").exists()
