"""report.pdf, to hand in: printed from report.html by headless Chromium, every figure embedded and whole.

Poppler's tools read the PDF back: pdfinfo's page count, pdftoppm's pictures of the pages (each holds
something), pdfimages' list of embedded pictures (one per <img> of report.html: a figure cut by a page break
would be listed twice). Without Chromium, or when it fails, the report says how to get the PDF in one line,
on the console too, and is otherwise whole.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import matplotlib.image as mpimg
import pytest
from report_util import make

from sweep import report
from sweep.report import pdf

POPPLER = ("pdfinfo", "pdftoppm", "pdfimages")


@pytest.fixture(scope="module", params=["wide16", "asha24_ood"])  # the most parameters; the most figures
def printed(request, tmp_path_factory):
    if pdf.browser() is None:
        pytest.skip("no headless Chromium on this machine (Debian: apt-get install -y chromium)")
    missing = [t for t in POPPLER if shutil.which(t) is None]
    if missing:
        pytest.skip(f"no {', '.join(missing)} (Debian: apt-get install -y poppler-utils)")
    folder = make(request.param, tmp_path_factory.mktemp(request.param))
    text = report.write_report(folder)
    return {"folder": folder, "text": text, "pdf": os.path.join(folder, pdf.PDF)}


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


def test_the_pdf_is_there_and_the_report_says_so(printed):
    with open(printed["pdf"], "rb") as f:
        assert f.read(5) == b"%PDF-"
    assert "**To hand in:** `report.pdf`" in printed["text"]


def test_every_page_is_drawn(printed, tmp_path):
    pages = int(re.search(r"^Pages:\s+(\d+)", _run("pdfinfo", printed["pdf"]), re.M).group(1))
    assert pages >= 3
    _run("pdftoppm", "-r", "30", "-png", printed["pdf"], str(tmp_path / "page"))
    pngs = sorted(tmp_path.glob("page*.png"))
    assert len(pngs) == pages
    for png in pngs:
        pixels = mpimg.imread(str(png))[..., :3]
        assert (pixels.min(axis=2) < 0.5).mean() > 0.002, png.name  # text or a figure, not a blank page


def test_every_figure_is_embedded_once(printed):
    with open(os.path.join(printed["folder"], "report.html"), encoding="utf-8") as f:
        pictures = len(re.findall(r"<img\b", f.read()))
    listed = [line.split() for line in _run("pdfimages", "-list", printed["pdf"]).splitlines()[2:]]
    rows = [r for r in listed if r and r[2] == "image"]  # not an `smask` (a picture's transparency)
    assert len(rows) == pictures >= 6
    objects = [r[10] for r in rows]  # a figure cut in two would be drawn on two pages
    assert len(set(objects)) == len(objects)


def test_without_chromium_one_line_says_how_and_the_rest_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pdf, "BROWSERS", ("no-such-browser-here",))
    folder = make("smoke4", tmp_path)
    with open(os.path.join(folder, pdf.PDF), "wb") as f:
        f.write(b"%PDF- an earlier build's")
    text = report.write_report(folder)
    out = capsys.readouterr()
    assert out.err == ""
    (line,) = out.out.splitlines()
    assert "apt-get install chromium" in line and "print it to PDF" in line
    assert "**No `report.pdf`:** no headless Chromium" in text
    assert not os.path.exists(os.path.join(folder, pdf.PDF))  # an earlier build's PDF is not this report
    for name in ("report.md", "report.html", "optuna.journal", "plots/parallel_coordinates.png"):
        assert os.path.isfile(os.path.join(folder, name)), name


def test_a_failing_chromium_is_one_line_not_a_failed_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pdf, "BROWSERS", ("false",))  # /bin/false: starts, prints nothing, exits 1
    folder = make("smoke4", tmp_path)
    text = report.write_report(folder)
    out = capsys.readouterr()
    (line,) = out.out.splitlines()
    assert "printed no PDF (exit status 1" in line and out.err == ""
    assert "printed no PDF" in text and "To hand in" not in text
    with open(os.path.join(folder, "report.html"), encoding="utf-8") as f:
        assert "printed no PDF" in f.read()  # the page says what report.md says
    assert not os.path.exists(os.path.join(folder, pdf.PDF))
    with open(os.path.join(folder, "logs", "report.log"), encoding="utf-8") as f:
        assert "printed no PDF (exit status 1)" in f.read()
