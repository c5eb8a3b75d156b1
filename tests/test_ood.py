"""DL4DS OOD files: checks, download, streaming prediction, labelled accuracy, report."""
import hashlib
import http.server
import os
import socket
import threading

import numpy as np
import pytest
import torch

from robustness.download import download_ood
from robustness.measure import accuracy_table, format_table, load_labels, measure
from robustness.ood import BASE_URL, DL4DS_ORDER, OOD_FILES, SHA256, check_ood_dir, images_per_severity, main
from robustness.predict import predict_ood
from trainables.data import MEAN, STD
from trainables.errors import DataError
from trainables.inference import predict


def make_ood_dir(path, n=4, seed=0, names=OOD_FILES):
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    for name in names:
        np.save(os.path.join(path, name), rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8))
    return str(path)


class PixelModel(torch.nn.Module):
    """Predicts the class written in pixel (0, 0) red channel: the test controls every prediction."""

    def forward(self, x):
        value = torch.round((x[:, 0, 0, 0] * STD[0] + MEAN[0]) * 255).long()
        return torch.nn.functional.one_hot(value % 100, 100).float()


def test_constants():
    assert len(OOD_FILES) == 19 == len(DL4DS_ORDER) == len(set(DL4DS_ORDER))
    assert OOD_FILES[0] == "distortion00.npy" and OOD_FILES[-1] == "distortion18.npy"
    assert set(SHA256) == set(OOD_FILES)
    assert all(len(h) == 64 and set(h) <= set("0123456789abcdef") for h in SHA256.values())


def test_check_returns_memory_maps(tmp_path):
    arrays = check_ood_dir(make_ood_dir(tmp_path, n=3))
    assert len(arrays) == 19 and all(isinstance(a, np.memmap) for a in arrays)
    assert arrays[0].shape == (15, 32, 32, 3) and images_per_severity(arrays) == 3


def test_missing_files_named_with_url(tmp_path):
    d = make_ood_dir(tmp_path)
    os.remove(os.path.join(d, "distortion07.npy"))
    os.remove(os.path.join(d, "distortion12.npy"))
    with pytest.raises(DataError) as err:
        check_ood_dir(d)
    msg = str(err.value)
    assert "2 of 19" in msg and "distortion07.npy, distortion12.npy" in msg and "distortion00" not in msg
    assert BASE_URL in msg and d in msg
    with pytest.raises(DataError, match="no directory"):
        check_ood_dir(str(tmp_path / "nowhere"))


@pytest.mark.parametrize("damage, match", [
    (lambda p: open(p, "r+b").truncate(os.path.getsize(p) - 100), "truncated"),
    (lambda p: open(p, "ab").write(b"x"), "damaged"),
    (lambda p: np.save(p, np.zeros((20, 32, 32, 3), np.float32)), "float32"),
    (lambda p: np.save(p, np.zeros((20, 32, 32, 1), np.uint8)), "shape"),
    (lambda p: np.save(p, np.zeros((21, 32, 32, 3), np.uint8)), "shape"),
    (lambda p: np.save(p, np.zeros((25, 32, 32, 3), np.uint8)), "mixed up"),
    (lambda p: open(p, "wb").write(b"version https://git-lfs.github.com/spec/v1\noid sha256:00\n"), "not a readable"),
])
def test_damaged_file_named(tmp_path, damage, match):
    d = make_ood_dir(tmp_path, n=4)
    path = os.path.join(d, "distortion05.npy")
    damage(path)
    with pytest.raises(DataError, match=match) as err:
        check_ood_dir(d)
    assert "distortion05.npy" in str(err.value)


def test_sha256_check(tmp_path):
    d = make_ood_dir(tmp_path, n=2)
    table = {name: hashlib.sha256(open(os.path.join(d, name), "rb").read()).hexdigest() for name in OOD_FILES}
    check_ood_dir(d, verify_sha256=True, checksums=table)
    sums = tmp_path / "SHA256SUMS"
    sums.write_text("".join(f"{h}  ood/{name}\n" for name, h in table.items()))
    assert main(["check", d, "--sha256", "--checksums", str(sums)]) == 0
    with open(os.path.join(d, "distortion11.npy"), "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(b"\xff" if last != b"\xff" else b"\x00")
    with pytest.raises(DataError, match="distortion11.npy.*sha256"):
        check_ood_dir(d, verify_sha256=True, checksums=table)
    with pytest.raises(DataError, match="published checksums are for the full files"):
        check_ood_dir(d, verify_sha256=True)
    assert main(["check", str(tmp_path / "nowhere")]) == 2


@pytest.mark.parametrize("batch_size", [7, 1000])
def test_streaming_prediction_equals_in_memory(tmp_path, batch_size):
    d = make_ood_dir(tmp_path, n=6, seed=1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(8, 100))
    seen = []
    preds = predict_ood(model, d, batch_size=batch_size, progress=lambda i, done, total: seen.append((i, done)))
    in_memory = np.stack([predict(model, np.load(os.path.join(d, name)), 30) for name in OOD_FILES])
    assert preds.shape == (19, 30) and preds.dtype == np.int64
    np.testing.assert_array_equal(preds, in_memory)
    assert seen[-1] == (18, 30)
    arrays = [np.load(os.path.join(d, name)) for name in OOD_FILES]  # arrays in memory work too
    np.testing.assert_array_equal(predict_ood(model, arrays, batch_size=batch_size), in_memory)
    with pytest.raises(DataError, match="rows"):
        predict_ood(model, arrays[:2] + [arrays[2][:10]])


def _labelled_ood(tmp_path, n=2):
    """Every image's pixel says its label, except image 0 of gaussian_noise s1 and all of motion_blur s5."""
    labels = np.arange(1, n + 1)
    os.makedirs(tmp_path, exist_ok=True)
    for f, name in enumerate(OOD_FILES):
        x = np.zeros((5 * n, 32, 32, 3), np.uint8)
        x[:, 0, 0, 0] = np.tile(labels, 5)
        if DL4DS_ORDER[f] == "gaussian_noise":
            x[0, 0, 0, 0] = 50
        if DL4DS_ORDER[f] == "motion_blur":
            x[4 * n:, 0, 0, 0] = 60
        np.save(os.path.join(tmp_path, name), x)
    return str(tmp_path), labels


def test_labelled_accuracy_hand_count(tmp_path):
    d, labels = _labelled_ood(tmp_path)
    clean_x = np.zeros((4, 32, 32, 3), np.uint8)
    clean_x[:, 0, 0, 0] = [3, 4, 5, 6]
    with pytest.raises(DataError, match="no labels"):
        measure(PixelModel(), d)
    result = measure(PixelModel(), d, labels, clean_x=clean_x, clean_y=np.array([3, 4, 5, 0]))
    assert result["accuracy"]["gaussian_noise"] == [0.5, 1, 1, 1, 1]
    assert result["accuracy"]["motion_blur"] == [1, 1, 1, 1, 0]
    assert result["accuracy"]["fog"] == [1, 1, 1, 1, 1]
    assert result["corruption_mean"]["motion_blur"] == pytest.approx(0.8)
    assert result["severity_mean"][0] == pytest.approx(1 - 0.5 / 19)
    assert result["ood_acc"] == pytest.approx(1 - 3 / 190)  # 3 wrong of 19*5*2
    assert result["clean_acc"] == 0.75 and result["ood_to_clean"] == pytest.approx((1 - 3 / 190) / 0.75)
    np.save(os.path.join(d, "labels.npy"), labels)  # a generated set carries its labels
    assert measure(PixelModel(), d)["ood_acc"] == result["ood_acc"]
    table = format_table(result)
    assert "| gaussian_noise | 50.0 | 100.0 |" in table and "| clean |" in table


def test_cifar100c_layout_with_repeated_labels(tmp_path):
    d, labels = _labelled_ood(tmp_path / "dl4ds")
    c = tmp_path / "c"
    c.mkdir()
    for name, corruption in zip(OOD_FILES, DL4DS_ORDER):
        os.rename(os.path.join(d, name), c / f"{corruption}.npy")
    np.save(c / "labels.npy", np.tile(labels, 5).astype(np.uint8))  # CIFAR-100-C stores 5n uint8 labels
    assert measure(PixelModel(), str(c))["ood_acc"] == pytest.approx(1 - 3 / 190)
    with pytest.raises(DataError, match="need 2 or 10"):
        load_labels(str(c), np.arange(3), n=2)


def test_accuracy_table_small():
    preds = np.zeros((19, 10), int)
    preds[3, 5:] = 1  # file 3: severities 3 (images 0..1 ... ) see below
    labels = np.zeros(2, int)
    result = accuracy_table(preds, labels)
    assert result["accuracy"][DL4DS_ORDER[3]] == [1, 1, 0.5, 0, 0]
    assert result["ood_acc"] == pytest.approx(1 - 5 / 190) and result["clean_acc"] is None


def test_report_files(tmp_path):
    from robustness.report import contact_images_ood, contact_sheet_png, write_report

    d, labels = _labelled_ood(tmp_path / "ood")
    result = measure(PixelModel(), d, labels)
    paths = write_report(result, str(tmp_path / "rep"))
    assert open(paths["markdown"]).read().count("\n| ") >= 20 and os.path.getsize(paths["heatmap"]) > 1000
    images = contact_images_ood(check_ood_dir(d), index=1)
    assert images.shape == (19, 5, 32, 32, 3)
    png = contact_sheet_png(images, str(tmp_path / "sheet.png"), clean=images[0, 0])
    assert open(png, "rb").read(4) == b"\x89PNG"


def test_heatmap_cells_show_one_decimal_and_a_labelled_colour_bar():
    from robustness.report import heatmap_figure

    preds = np.zeros((19, 5 * 200), int)
    preds[0, :1] = 1  # gaussian_noise s1: 1 of 200 right = 0.5%, which whole percents showed as "0"
    result = accuracy_table(preds, np.ones(200, int))
    fig = heatmap_figure(result)
    ax, bar = fig.axes
    cells = [t.get_text() for t in ax.texts]
    assert len(cells) == 95 and cells[0] == "0.5" and cells[1] == "0.0"
    assert bar.get_ylabel() == "accuracy (%)" and "%" in ax.get_title()


def test_prediction_progress_goes_to_stderr(tmp_path, capsys):
    d = make_ood_dir(tmp_path, n=3)
    predict_ood(PixelModel(), d, batch_size=4)
    out, err = capsys.readouterr()
    assert out == "" and "predicting OOD set" in err and "285/285" in err  # 19 files x 15 images, counted


def test_labelled_ood_dir_is_scored_in_the_sweep(tmp_path):
    from sweep.robust_eval import labelled_dir

    d, labels = _labelled_ood(tmp_path / "ood")
    preds = predict_ood(PixelModel(), d)
    said = []
    assert labelled_dir(preds, d, 0.5, str(tmp_path / "none"), said.append) is None  # no labels.npy: nothing
    assert not os.path.exists(tmp_path / "none") and not said
    np.save(os.path.join(d, "labels.npy"), labels)  # as robustness.generate writes it
    result = labelled_dir(preds, d, 0.5, str(tmp_path / "rep"), said.append)
    assert result["ood_acc"] == pytest.approx(1 - 3 / 190) and result["accuracy"]["motion_blur"] == [1, 1, 1, 1, 0]
    assert said == [f"robustness (Labelled OOD folder ({d})): OOD accuracy 98.4%"]
    assert {"report.md", "heatmap.png", "robustness.json"} <= set(os.listdir(tmp_path / "rep"))
    assert "98.4" in open(tmp_path / "rep" / "report.md").read()


def _arrays(n_test=60, n_train=200):
    from trainables.data import Arrays

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n_train + n_test, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n_train + n_test) % 10
    return Arrays(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def test_generated_robustness_corrupts_once_per_data_and_scores_all(tmp_path, monkeypatch):
    from robustness import corrupted_set
    from sweep import robust_eval
    from sweep.space import OodVal

    monkeypatch.setenv("CIFAR_SWEEP_CACHE", str(tmp_path / "cache"))
    ood = OodVal(corruptions=("fog", "contrast"), severities=(1,), images=10, test_images=20, seed=0)
    said = []
    result = robust_eval.generated(PixelModel(), _arrays(), ood, 0.5, "cpu", str(tmp_path / "gen"), said.append)
    assert result["n"] == 20 and len(result["accuracy"]) == 19
    assert result["tuned_on"] == ["fog", "contrast"]  # in the suite's order
    held = [result["corruption_mean"][c] for c in result["accuracy"] if c not in ("fog", "contrast")]
    assert result["held_out_acc"] == pytest.approx(np.mean(held))
    assert said[0].startswith("robustness: 20 test images x 19 corruptions x 5 severities")
    assert said[-1].startswith("robustness (Generated") and said[-1].count("%") == 3
    monkeypatch.setattr(corrupted_set, "corrupt_all", lambda *a, **k: pytest.fail("corrupted again"))
    again = robust_eval.generated(PixelModel(), _arrays(), ood, 0.5, "cpu", str(tmp_path / "gen2"), said.append)
    assert again["accuracy"] == result["accuracy"] and any("from the cache" in line for line in said)


def test_ood_validation_set_is_the_trials_validation_images_corrupted(tmp_path, monkeypatch):
    from sweep.ood_val import build_ood_val
    from sweep.space import OodVal
    from trainables.data import split

    monkeypatch.setenv("CIFAR_SWEEP_CACHE", str(tmp_path))
    arrays = _arrays()
    ood = OodVal(corruptions=("gaussian_noise", "jpeg_compression"), severities=(2, 5), images=10, seed=4)
    x, y = build_ood_val(arrays, {"val_fraction": 0.25}, ood)["ood_val"]
    assert x.shape == (2 * 2 * 10, 32, 32, 3) and len(y) == 40
    val = split(arrays, 0.25)
    assert np.bincount(y[:10], minlength=10).tolist() == [1] * 10  # class-balanced pick of the validation images
    assert set(map(bytes, x[10:20].reshape(10, -1))).isdisjoint(set(map(bytes, val.x_val.reshape(len(val.x_val), -1))))
    np.testing.assert_array_equal(y, np.tile(y[:10], 4))


# --- download, against a server on 127.0.0.1 that honours Range like GitHub's LFS media server ---

class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    served: list = []

    def do_GET(self):
        body = self.files.get(self.path.rsplit("/", 1)[-1])
        if body is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") else 0
        if start >= len(body) > 0:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])
        self.served.append(len(body) - start)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    src = make_ood_dir(tmp_path / "src", n=2, seed=3)
    _Handler.files = {name: open(os.path.join(src, name), "rb").read() for name in OOD_FILES}
    _Handler.served = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ood-test/", _Handler
    httpd.shutdown()
    httpd.server_close()


def test_download_resumes_and_verifies(tmp_path, server):
    url, handler = server
    sums = {name: hashlib.sha256(body).hexdigest() for name, body in handler.files.items()}
    out = tmp_path / "ood"
    out.mkdir()
    body = handler.files["distortion04.npy"]
    (out / "distortion04.npy.part").write_bytes(body[:1000])  # an interrupted earlier download
    (out / "distortion09.npy").write_bytes(handler.files["distortion09.npy"])  # already there: not fetched
    fetched = download_ood(str(out), base_url=url, checksums=sums)
    assert len(fetched) == 18 and "distortion09.npy" not in fetched
    assert len(body) - 1000 in handler.served  # only the rest of distortion04 was sent
    assert not [p for p in os.listdir(out) if p.endswith(".part")]
    check_ood_dir(str(out), verify_sha256=True, checksums=sums)


def test_download_bad_checksum_and_lfs_pointer(tmp_path, server):
    url, handler = server
    handler.files["distortion02.npy"] = b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 1\n"
    sums = {"distortion01.npy": "0" * 64}
    with pytest.raises(DataError) as err:
        download_ood(str(tmp_path / "ood"), base_url=url, checksums=sums)
    msg = str(err.value)
    assert "2 of 19" in msg and "distortion01.npy: 'distortion01.npy' downloaded but fails its sha256" in msg
    assert "LFS pointer" in msg
    assert sorted(os.listdir(tmp_path / "ood")) == sorted(set(OOD_FILES) - {"distortion01.npy", "distortion02.npy"})


def test_download_offline_lists_missing(tmp_path):
    with socket.socket() as s:  # a port nothing listens on: connection refused, like no network
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = make_ood_dir(tmp_path, n=2, names=OOD_FILES[:17])
    with pytest.raises(DataError) as err:
        download_ood(d, base_url=f"http://127.0.0.1:{port}/", attempts=1, timeout=5)
    msg = str(err.value)
    assert "2 of 19" in msg and "distortion17.npy, distortion18.npy" in msg and "URLError" in msg
