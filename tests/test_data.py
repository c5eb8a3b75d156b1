"""Data: both sources, every bad-file case, the stratified split, the fingerprint."""
from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REAL_NPZ, write_npz
from trainables import data as data_mod
from trainables.data import MEAN, STD, Arrays, fingerprint, load_arrays, normalize, split
from trainables.errors import DataError


def test_npz_loads_validated(synth_npz, synth_arrays):
    a = load_arrays(synth_npz)
    assert isinstance(a, Arrays) and a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int64
    for key, value in synth_arrays.items():
        assert np.array_equal(getattr(a, key), value)


def _bad_file(case: str, d, good: dict) -> tuple[str, list[str]]:
    """Writes one broken data file; returns its path and the words its error must contain."""
    def npz(name, **changes):
        return write_npz(d / name, **{k: v for k, v in {**good, **changes}.items() if v is not None})

    if case == "not_a_zip":
        (d / "text.npz").write_text("not a zip at all")
    if case == "truncated":
        whole = open(npz("whole.npz"), "rb").read()
        (d / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    if case == "corrupt_member":  # zip directory intact, array bytes damaged (CRC mismatch)
        whole = bytearray(open(npz("whole.npz"), "rb").read())
        whole[len(whole) // 3: len(whole) // 3 + 5000] = bytes(5000)
        (d / "corrupt.npz").write_bytes(bytes(whole))
    if case == "npy_not_npz":
        np.save(d / "single.npy", good["x_train"])
    y_100 = good["y_train"].copy()
    y_100[0] = 100
    cases = {
        "missing": lambda: (str(d / "nope.npz"), ["nope.npz", "does not exist"]),
        "not_a_zip": lambda: (str(d / "text.npz"), ["text.npz", "not a .npz"]),
        "truncated": lambda: (str(d / "truncated.npz"), ["truncated.npz"]),
        "corrupt_member": lambda: (str(d / "corrupt.npz"), ["corrupt.npz", "key 'x_train'"]),
        "object_labels": lambda: (npz("o.npz", y_train=np.array([None] * len(good["y_train"]))), ["o.npz", "y_train"]),
        "npy_not_npz": lambda: (str(d / "single.npy"), ["single.npy", ".npz"]),
        "missing_key": lambda: (npz("nokey.npz", y_test=None), ["nokey.npz", "y_test"]),
        "float_images": lambda: (npz("f.npz", x_train=good["x_train"].astype(np.float32)), ["x_train", "uint8"]),
        "nchw_images": lambda: (npz("chw.npz", x_test=good["x_test"].transpose(0, 3, 1, 2)),
                                ["x_test", "(N, 32, 32, 3)"]),
        "label_100": lambda: (npz("l.npz", y_train=y_100), ["y_train", "0-99"]),
        "label_negative": lambda: (npz("n.npz", y_test=good["y_test"] - 1), ["y_test", "0-99"]),
        "float_labels": lambda: (npz("fl.npz", y_test=good["y_test"].astype(np.float64)), ["y_test", "integer"]),
        "length_mismatch": lambda: (npz("len.npz", y_train=good["y_train"][:-1]), ["y_train", "x_train"]),
        "empty_train": lambda: (npz("e.npz", x_train=good["x_train"][:0], y_train=good["y_train"][:0]), ["x_train"]),
        "empty_source": lambda: ("", ["no data source"]),
    }
    return cases[case]()


BAD_FILE_CASES = ["missing", "not_a_zip", "truncated", "corrupt_member", "object_labels", "npy_not_npz", "missing_key",
                  "float_images", "nchw_images", "label_100", "label_negative", "float_labels", "length_mismatch",
                  "empty_train", "empty_source"]


@pytest.mark.parametrize("case", BAD_FILE_CASES)
def test_bad_data_file_is_a_clear_error(case, tmp_path, synth_arrays):
    path, words = _bad_file(case, tmp_path, synth_arrays)
    with pytest.raises(DataError) as err:
        load_arrays(path)
    for w in words:
        assert w in str(err.value), str(err.value)


# ---- torchvision CIFAR-100 root ------------------------------------------------------------------

def _write_cifar_root(root, arrays: dict) -> None:
    """The official layout: a protocol-2 pickled dict per split, images as (N, 3072) CHW rows."""
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    for name in ("train", "test"):
        x, y = arrays[f"x_{name}"], arrays[f"y_{name}"]
        d = {b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), b"fine_labels": [int(v) for v in y],
             b"coarse_labels": [int(v) // 5 for v in y], b"filenames": [b"img.png"] * len(x), b"batch_label": b"x"}
        with open(base / name, "wb") as f:
            pickle.dump(d, f, protocol=2)


def test_cifar_root_loads_like_the_npz(tmp_path, synth_arrays):
    _write_cifar_root(tmp_path, synth_arrays)
    a = load_arrays(str(tmp_path))
    for key, value in synth_arrays.items():
        assert np.array_equal(getattr(a, key), value), key
    assert len(fingerprint(str(tmp_path))) == 64


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_cifar_pickle_cannot_run_code(tmp_path):
    target = str(tmp_path / "pwned")
    base = tmp_path / "root" / "cifar-100-python"
    base.mkdir(parents=True)
    for name in ("train", "test"):
        (base / name).write_bytes(pickle.dumps({b"data": _Evil(target), b"fine_labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="train"):
        load_arrays(str(tmp_path / "root"))
    assert not os.path.exists(target)


def test_cifar_root_never_downloads_unless_asked(tmp_path, synth_arrays, monkeypatch):
    import torchvision

    calls = []

    def fake_cifar100(root, train=True, download=False, **kw):
        calls.append(download)
        _write_cifar_root(tmp_path / "dl", synth_arrays)

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", fake_cifar100)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="download"):
        load_arrays(str(tmp_path / "empty"))
    assert calls == []
    a = load_arrays(str(tmp_path / "dl"), download=True)
    assert calls == [True] and np.array_equal(a.y_test, synth_arrays["y_test"])


# ---- split ---------------------------------------------------------------------------------------

def _arrays(y: np.ndarray) -> Arrays:
    x = np.zeros((len(y), 32, 32, 3), np.uint8)
    x[:, 0, 0, 0] = np.arange(len(y)) % 256  # tag images so pairs (x, y) can be checked
    x[:, 0, 0, 1] = np.arange(len(y)) // 256
    return Arrays(x, y.astype(np.int64), x[:1], y[:1].astype(np.int64))


def _ids(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0, 0].astype(np.int64) + 256 * x[:, 0, 0, 1].astype(np.int64)


def test_split_is_stratified_seeded_and_disjoint():
    y = np.repeat(np.arange(100), 50)
    a = _arrays(y)
    s = split(a, 0.1, seed=0)
    assert np.bincount(s.y_val, minlength=100).tolist() == [5] * 100
    assert np.bincount(s.y_train, minlength=100).tolist() == [45] * 100
    ids_tr, ids_val = _ids(s.x_train), _ids(s.x_val)
    assert not set(ids_tr) & set(ids_val) and len(ids_tr) + len(ids_val) == len(y)
    assert np.array_equal(y[ids_tr], s.y_train) and np.array_equal(y[ids_val], s.y_val)
    again, other = split(a, 0.1, seed=0), split(a, 0.1, seed=1)
    assert all(np.array_equal(p, q) for p, q in zip(s, again))
    assert not np.array_equal(_ids(other.x_val), ids_val)


def test_split_subset_and_no_validation():
    a = _arrays(np.repeat(np.arange(100), 50))
    s = split(a, 0.2, seed=3, subset=1000)
    assert len(s.y_train) == 800 and len(s.y_val) == 200
    assert set(np.bincount(s.y_train, minlength=100)) == {8}
    none = split(a, 0.0, seed=0)
    assert none.x_val.shape == (0, 32, 32, 3) and none.y_val.shape == (0,) and len(none.y_train) == 5000
    with pytest.raises(DataError, match="subset"):
        split(a, 0.1, seed=0, subset=5001)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 99), min_size=1, max_size=300), st.floats(0, 0.9), st.integers(0, 2**31 - 1),
       st.integers(0, 300))
def test_split_properties(labels, val_fraction, seed, subset):
    y = np.array(labels)
    subset = min(subset, len(y))
    try:
        s = split(_arrays(y), val_fraction, seed, subset)
    except DataError:  # only when nothing is left to train on
        assert round(val_fraction * (subset or len(y))) >= (subset or len(y))
        return
    n = subset or len(y)
    assert len(s.y_train) + len(s.y_val) == n and len(s.y_val) == round(val_fraction * n)
    ids = np.concatenate([_ids(s.x_train), _ids(s.x_val)])
    assert len(set(ids.tolist())) == n and np.array_equal(y[ids], np.concatenate([s.y_train, s.y_val]))
    # per class, the validation share is within one image of the exact proportion
    counts = np.bincount(y[ids], minlength=100)
    val_counts = np.bincount(s.y_val, minlength=100)
    assert np.all(np.abs(val_counts - counts * len(s.y_val) / n) < 1 + 1e-9)


# ---- fingerprint and normalisation ---------------------------------------------------------------

def test_fingerprint_is_sha256_and_cached(synth_npz, tmp_path, monkeypatch):
    expected = hashlib.sha256(open(synth_npz, "rb").read()).hexdigest()
    assert fingerprint(synth_npz) == expected
    monkeypatch.setattr(data_mod.hashlib, "sha256", lambda: pytest.fail("rehashed an unchanged file"))
    assert fingerprint(synth_npz) == expected
    monkeypatch.undo()
    copy = tmp_path / "copy.npz"
    copy.write_bytes(open(synth_npz, "rb").read() + b"x")
    assert fingerprint(str(copy)) != expected
    with pytest.raises(DataError):
        fingerprint(str(tmp_path / "missing.npz"))


def test_normalize_matches_the_evaluation():
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    ref = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(normalize(x), ref, atol=1e-6)


@pytest.mark.skipif(not os.path.exists(REAL_NPZ), reason="real CIFAR-100 npz not available")
def test_real_npz():
    a = load_arrays(REAL_NPZ)
    assert a.x_train.shape == (50000, 32, 32, 3) and a.x_test.shape == (10000, 32, 32, 3)
    assert np.bincount(a.y_train).tolist() == [500] * 100 and np.bincount(a.y_test).tolist() == [100] * 100
    assert fingerprint(REAL_NPZ) == "41d3a31923fcfba6e723fdcac8bb12081ea8e3d17e0502af183ea65566c08155"
    s = split(a, 0.1, seed=0, subset=10000)
    assert len(s.y_train) == 9000 and np.bincount(s.y_val).tolist() == [10] * 100
