"""The CIFAR-100-C corruption suite, its one parameter table shared with the training augmentation, the
parallel cached corrupted sets and the generator CLI."""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from robustness import corrupted_set, generate
from robustness.corrupted_set import cached_corrupt_all, corrupt_all, corrupt_block
from robustness.corruptions import SUITE, corrupt, corrupt_batch
from robustness.corruptions_blur import motion_kernel
from robustness.ood import DL4DS_ORDER, OOD_FILES, check_ood_dir
from trainables import corruption_table
from trainables.corrupt_aug import AUGMENTATIONS
from trainables.corruption_table import NAMES, PARAMS, SEVERITIES
from trainables.data import stratified_subset
from trainables.errors import UserError

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar100.npz"


@pytest.fixture(scope="module")
def images():
    """12 real CIFAR-100 test images when ../shared/data has them, else smooth synthetic pictures."""
    if CIFAR.is_file():
        with np.load(CIFAR) as d:
            return d["x_test"][:12].copy()
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (12, 4, 4, 3)).astype(np.uint8)
    return np.stack([cv2.resize(c, (32, 32), interpolation=cv2.INTER_CUBIC) for c in coarse])


def test_one_table_read_by_suite_and_augmentation():
    assert list(SUITE) == list(NAMES) == list(PARAMS) and len(NAMES) == 19
    assert all(len(row) == len(SEVERITIES) for row in PARAMS.values())
    assert set(AUGMENTATIONS) <= set(NAMES) and len(AUGMENTATIONS) == 9
    assert sorted(DL4DS_ORDER) == sorted(NAMES)  # the file order names exactly the suite's corruptions


def _augment(name: str, images: np.ndarray, severity: int, seed: int = 0) -> np.ndarray:
    """The training augmentation's corruption `name` at `severity` (1..5), uint8 NHWC in and out."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    sev = torch.full((len(images),), severity - 1)  # the augmentation indexes table rows from 0
    y = AUGMENTATIONS[name](x, sev, torch.Generator().manual_seed(seed))
    return y.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def many_images():
    """64 real CIFAR-100 test images when available, else 64 smooth synthetic pictures."""
    if CIFAR.is_file():
        with np.load(CIFAR) as d:
            return d["x_test"][100:164].copy()
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, (64, 4, 4, 3)).astype(np.uint8)
    return np.stack([cv2.resize(c, (32, 32), interpolation=cv2.INTER_CUBIC) for c in coarse])


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", [n for n in NAMES if n in AUGMENTATIONS])
def test_augmentation_and_suite_change_images_alike(many_images, name, severity):
    """Per (corruption, severity) of the shared table, the training augmentation (torch) and the evaluation
    suite (numpy) change the same images by the same distribution of pixel differences.

    Tolerances: 1 level on the mean (the suite truncates to uint8 as the CIFAR generator did, the augmentation
    rounds: -0.5 on average) and 10% + 0.5 levels on the std and the mean absolute change (random draws differ;
    impulse noise hits ~2,000 of 196,608 values). A different parameter or a different resampling (the
    augmentation's old nearest-neighbour pixelate changed 6x more) is far outside them."""
    x = many_images.astype(np.float64)
    suite = corrupt_batch(many_images, name, severity, np.random.default_rng(0)) - x
    aug = _augment(name, many_images, severity) - x
    assert abs(suite.mean() - aug.mean()) <= 1.0, (suite.mean(), aug.mean())
    for stat in (np.std, lambda d: np.abs(d).mean()):
        a, b = stat(suite), stat(aug)
        assert abs(a - b) <= 0.1 * max(a, b) + 0.5, (name, severity, a, b)
    assert np.abs(aug).mean() > 0  # the comparison is not between two no-ops


@pytest.mark.parametrize("name", NAMES)
def test_every_corruption_and_severity(images, name):
    change = []
    for severity in range(1, 6):
        a = corrupt_batch(images, name, severity, np.random.default_rng(11))
        b = corrupt_batch(images, name, severity, np.random.default_rng(11))
        assert a.dtype == np.uint8 and a.shape == images.shape
        np.testing.assert_array_equal(a, b)  # deterministic for a seed
        diff = np.abs(a.astype(int) - images).mean(axis=(1, 2, 3))
        # >= 3/4, not all: saturate rightly leaves a grey picture (CIFAR has some) as it is
        assert (diff > 0).mean() >= 0.75, f"{name} s{severity} left images unchanged: {diff}"
        change.append(diff.mean())
    if name in ("elastic_transform", "saturate"):
        # CIFAR's table: elastic s1 is a pure 2.6-pixel affine jitter, s5 a 1-pixel one plus local elastic
        # warping; saturate s1 desaturates (x0.3) and s5 oversaturates (x2): pixel distance is not monotonic in
        # severity for either (it depends on the images), while the damage grows; check both ends change.
        assert change[0] > 0 and change[4] > 0
    else:
        assert change[4] > change[0], f"{name}: severity 5 changed less than 1 ({change})"


def test_corrupt_single_image_and_errors(images):
    out = corrupt(images[0], "fog", 3, np.random.default_rng(0))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    with pytest.raises(UserError, match="did you mean 'gaussian_noise'"):
        corrupt(images[0], "gaussian_nose", 1, np.random.default_rng(0))
    with pytest.raises(UserError, match="severity"):
        corrupt(images[0], "fog", 6, np.random.default_rng(0))
    with pytest.raises(UserError, match=r"\(32, 32, 3\)"):
        corrupt(images[0].astype(np.float32), "fog", 1, np.random.default_rng(0))


def test_motion_kernel_is_imagemagick_shaped():
    k = motion_kernel(6, 1, 0)  # angle 0: a one-sided horizontal smear, 13 taps, heaviest at the pixel itself
    assert k.sum() == pytest.approx(1, abs=1e-6)
    centre = k.shape[0] // 2
    row = k[centre]
    assert np.count_nonzero(k) == np.count_nonzero(row) == 13
    assert row[centre] == row.max() and row[:centre].sum() == 0
    vertical = motion_kernel(6, 1, 90)
    np.testing.assert_allclose(vertical, k.T, atol=1e-7)


def _npz(path, n=30, keys=("x_test", "y_test")):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n) % 10
    np.savez(path, **{keys[0]: x, keys[1]: y})
    return str(path), x, y


def test_generate_cli_writes_dl4ds_layout(tmp_path, capsys):
    npz, x, y = _npz(tmp_path / "c.npz")
    out = tmp_path / "gen"
    assert generate.main(["--npz", npz, "--out", str(out), "--subset", "5", "--seed", "2"]) == 0
    arrays = check_ood_dir(str(out))
    assert [a.shape for a in arrays] == [(25, 32, 32, 3)] * 19
    labels = np.load(out / "labels.npy")
    np.testing.assert_array_equal(labels, [0, 1, 2, 3, 4])  # one image of each of the first 5 classes
    assert json.loads((out / "generate.json").read_text())["files"]["distortion18.npy"] == "saturate"
    contrast = arrays[DL4DS_ORDER.index("contrast")]
    np.testing.assert_array_equal(contrast[10:15], corrupt_batch(x[:5], "contrast", 3, np.random.default_rng(0)))
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]
    # same seed -> same bytes, other seed -> other noise; --workers gives the same files
    again = tmp_path / "again"
    assert generate.main(["--npz", npz, "--out", str(again), "--subset", "5", "--seed", "2", "--workers", "2"]) == 0
    for name in OOD_FILES:
        assert (out / name).read_bytes() == (again / name).read_bytes()
    other = tmp_path / "other"
    assert generate.main(["--npz", npz, "--out", str(other), "--subset", "5", "--seed", "3"]) == 0
    assert (out / "distortion00.npy").read_bytes() != (other / "distortion00.npy").read_bytes()
    assert "[19/19]" in capsys.readouterr().err


@pytest.mark.parametrize("args, match", [
    (["--npz", "missing.npz"], "does not exist"),
    (["--npz", "BAD"], "need x_test and y_test"),
    (["--npz", "GOOD", "--subset", "0"], "--subset must be 1..30"),
    (["--npz", "GOOD", "--split", "train"], "need x_train and y_train"),
])
def test_generate_cli_bad_input(tmp_path, capsys, args, match):
    good, _, _ = _npz(tmp_path / "good.npz")
    bad, _, _ = _npz(tmp_path / "bad.npz", keys=("images", "labels"))
    args = [{"GOOD": good, "BAD": bad}.get(a, a) for a in args]
    assert generate.main(args + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err


@pytest.mark.parametrize("seed", [None, 0, 7])
def test_stratified_subset_is_balanced(seed):
    y = np.repeat(np.arange(100), 100)[np.random.default_rng(0).permutation(10000)]
    keep = stratified_subset(y, 250, seed)
    counts = np.bincount(y[keep], minlength=100)
    assert len(keep) == 250 and counts.max() - counts.min() <= 1 and (np.diff(keep) > 0).all()
    assert np.array_equal(keep, stratified_subset(y, 250, seed))  # deterministic
    assert set(stratified_subset(y, 100, seed)) <= set(keep)  # fewer with the same seed: a subset
    if seed is None:  # each class's first images in index order
        first = [np.flatnonzero(y == c)[0] for c in range(100)]
        assert set(first) <= set(keep)
    else:
        assert not np.array_equal(keep, stratified_subset(y, 250, seed + 1))


def test_corrupt_all_in_parallel_equals_one_process(images, monkeypatch):
    names, severities = ["gaussian_noise", "fog", "contrast"], [1, 4]
    serial = corrupt_all(images, names, severities, seed=3, workers=1)
    monkeypatch.setattr(corrupted_set, "PARALLEL_FROM", 0)
    parallel = corrupt_all(images, names, severities, seed=3, workers=2)
    np.testing.assert_array_equal(serial, parallel)
    n = len(images)
    assert serial.shape == (3, 2 * n, 32, 32, 3)
    # each block is the suite's corruption drawn from its own Generator: (seed, corruption, severity)
    np.testing.assert_array_equal(serial[1, n:], corrupt_block(images, "fog", 4, 3))
    rng = np.random.default_rng([3, NAMES.index("gaussian_noise"), 1])
    np.testing.assert_array_equal(serial[0, :n], corrupt_batch(images, "gaussian_noise", 1, rng))


def test_corrupted_sets_are_cached_by_images_seed_and_table(images, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CIFAR_SWEEP_CACHE", str(tmp_path / "cache"))
    first = cached_corrupt_all(images, ["snow", "pixelate"], [2, 5], seed=1)
    files = os.listdir(tmp_path / "cache")
    assert len(files) == 1 and files[0].startswith("corrupted-") and files[0].endswith(".npy")
    calls = []
    real = corrupted_set.corrupt_all
    monkeypatch.setattr(corrupted_set, "corrupt_all", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = cached_corrupt_all(images, ["snow", "pixelate"], [2, 5], seed=1, mmap=True)
    assert not calls and isinstance(again, np.memmap)
    np.testing.assert_array_equal(first, again)
    cached_corrupt_all(images, ["snow", "pixelate"], [2, 5], seed=2)  # another seed
    cached_corrupt_all(images[:-1], ["snow", "pixelate"], [2, 5], seed=1)  # other images
    monkeypatch.setattr(corrupted_set, "VERSION", corruption_table.VERSION + "-changed")  # another table
    cached_corrupt_all(images, ["snow", "pixelate"], [2, 5], seed=1)
    assert len(calls) == 3 and len(os.listdir(tmp_path / "cache")) == 4  # each a new set, no temp files left
    # a damaged cache file is made again, not read
    path = tmp_path / "cache" / files[0]
    path.write_bytes(path.read_bytes()[:1000])
    monkeypatch.setattr(corrupted_set, "VERSION", corruption_table.VERSION)
    np.testing.assert_array_equal(cached_corrupt_all(images, ["snow", "pixelate"], [2, 5], seed=1), first)
    assert len(calls) == 4
    # progress goes to stderr with an estimate; stdout stays clean for whatever parses it
    out, err = capsys.readouterr()
    assert out == "" and "corrupting" in err and "img" in err
    monkeypatch.setenv("CIFAR_SWEEP_CACHE", "off")
    cached_corrupt_all(images, ["snow"], [1], seed=1)
    assert len(calls) == 5 and len(os.listdir(tmp_path / "cache")) == 4


def test_cache_keeps_the_most_recent_sets(images, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_SWEEP_CACHE", str(tmp_path))
    monkeypatch.setattr(corrupted_set, "KEEP", 2)
    for seed in range(4):
        cached_corrupt_all(images[:2], ["contrast"], [1], seed=seed)
    assert len(os.listdir(tmp_path)) == 2


def test_glass_blur_gather_equals_original_swap_loop(images):
    """The vectorised gather reproduces the generator's sequential tuple-'swap' loop draw for draw."""
    from robustness.corruptions_blur import glass_blur
    from skimage.filters import gaussian

    sigma = 0.25  # severity 4: two iterations
    rng = np.random.default_rng(4)
    x = np.uint8(gaussian(images[1] / 255.0, sigma=sigma, channel_axis=-1) * 255)
    for _ in range(2):
        d = rng.integers(-1, 1, size=(30, 30, 2))
        for a, h in enumerate(range(31, 1, -1)):
            for b, w in enumerate(range(31, 1, -1)):
                dx, dy = d[a, b]
                x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]  # as written in make_cifar_c.py
    expected = np.uint8(np.clip(gaussian(x / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255)
    got = np.uint8(glass_blur(images[1], 4, np.random.default_rng(4)))
    np.testing.assert_array_equal(got, expected)


def test_ctrl_c_stops_parallel_corrupting_without_finishing_the_queue(tmp_path):
    """Ctrl-C while the pool corrupts: the queued blocks are dropped, workers exit, the driver gets
    KeyboardInterrupt within seconds (a `with` pool waits for all 760 blocks: ~80 s of CPU, 40 s on 2 idle
    cores, after the Ctrl-C)."""
    import re
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import numpy as np\n"
        "from robustness import corrupted_set\n"
        "from trainables.corruption_table import NAMES\n"
        "corrupted_set.PARALLEL_FROM = 0\n"
        "x = np.random.default_rng(0).integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)\n"
        "try:\n"
        "    corrupted_set.corrupt_all(x, NAMES * 8, [1, 2, 3, 4, 5], 0, workers=2)\n"
        "    print('finished')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        err = ""
        while not re.search(r"\|\s*[1-9][0-9.]*k?/", err) and proc.poll() is None:  # blocks done: all submitted
            err += proc.stderr.read(1)
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        out, _ = proc.communicate(timeout=300)
        stopped_in = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.strip() == "interrupted" and stopped_in < 15, stopped_in
