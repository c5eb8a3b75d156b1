"""submission_ood.csv: format, order, validation, atomic writes."""
import os

import numpy as np
import pytest

from robustness import submission
from robustness.submission import read_submission, submission_ids, write_submission
from trainables.errors import DataError


def preds_for(n, seed=0):
    return np.random.default_rng(seed).integers(0, 100, size=(19, 5 * n))


def test_format_header_order_and_count(tmp_path):
    preds = preds_for(3)
    path = write_submission(preds, str(tmp_path / "submission_ood.csv"))
    lines = open(path).read().split("\n")
    assert lines[0] == "id,label" and lines[-1] == ""  # header, one row per line, final newline
    rows = lines[1:-1]
    assert len(rows) == 19 * 5 * 3
    assert rows[0] == f"distortion00_1_0,{preds[0, 0]}"
    assert rows[3] == f"distortion00_2_0,{preds[0, 3]}"  # severity 2 starts after n=3 images
    assert rows[15] == f"distortion01_1_0,{preds[1, 0]}"
    assert rows[-1] == f"distortion18_5_2,{preds[18, 14]}"
    ids = [r.split(",")[0] for r in rows]
    assert ids == submission_ids(3) and len(set(ids)) == len(ids)
    np.testing.assert_array_equal(read_submission(path, n=3), preds)


def test_full_size_950000_rows(tmp_path):
    preds = preds_for(10000)
    path = write_submission(preds, str(tmp_path / "submission_ood.csv"))
    back = read_submission(path, n=10000)
    np.testing.assert_array_equal(back, preds)
    with open(path) as f:
        assert sum(1 for _ in f) == 950_001


def test_flat_predictions_accepted(tmp_path):
    preds = preds_for(2)
    path = write_submission(preds.ravel(), str(tmp_path / "s.csv"))
    np.testing.assert_array_equal(read_submission(path), preds)


@pytest.mark.parametrize("bad, what", [
    (np.zeros((18, 10), int), "shape"),
    (np.zeros((19, 14), int), "shape"),
    (np.zeros((19, 5, 2), int), "shape"),
    (np.zeros((19, 0), int), "shape"),
    (np.zeros((19, 10), float), "integer"),
    (np.full((19, 10), 100), "0..99"),
    (np.full((19, 10), -1), "0..99"),
])
def test_invalid_predictions_rejected_before_writing(tmp_path, bad, what):
    path = tmp_path / "s.csv"
    with pytest.raises(DataError, match=what):
        write_submission(bad, str(path))
    assert not path.exists() and os.listdir(tmp_path) == []


def test_failure_mid_write_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "submission_ood.csv"
    path.write_text("previous\n")
    real = submission._lines

    def crash(preds):
        gen = real(preds)
        yield next(gen)
        raise OSError("disk full")

    monkeypatch.setattr(submission, "_lines", crash)
    with pytest.raises(OSError, match="disk full"):
        write_submission(preds_for(2), str(path))
    assert path.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["submission_ood.csv"]  # temp file cleaned up


def _write_text(tmp_path, text):
    path = tmp_path / "s.csv"
    path.write_text(text)
    return str(path)


def _good_lines(n=1):
    return ["id,label"] + [f"{i},7" for i in submission_ids(n)]


@pytest.mark.parametrize("edit, match", [
    (lambda L: ["ID,LABEL"] + L[1:], "header"),
    (lambda L: L[:-1], "rows"),
    (lambda L: L + ["distortion18_5_1,3"], "rows"),
    (lambda L: [L[0], L[2], L[1]] + L[3:], "line 2: id"),
    (lambda L: L[:5] + ["distortion00_1_0,3"] + L[6:], "line 6: id"),
    (lambda L: L[:3] + [L[3].replace(",7", ",abc")] + L[4:], "line 4: label"),
    (lambda L: L[:3] + [L[3].replace(",7", ",100")] + L[4:], "line 4: label"),
    (lambda L: L[:3] + [L[3] + ",1"] + L[4:], "line 4: expected"),
])
def test_read_submission_validation(tmp_path, edit, match):
    path = _write_text(tmp_path, "\n".join(edit(_good_lines())) + "\n")
    with pytest.raises(DataError, match=match):
        read_submission(path)


def test_read_submission_expected_count(tmp_path):
    path = _write_text(tmp_path, "\n".join(_good_lines(2)) + "\n")
    assert read_submission(path).shape == (19, 10)
    with pytest.raises(DataError, match="950,000"):
        read_submission(path, n=10000)
