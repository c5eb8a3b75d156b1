"""report.html is one self-contained page: moved alone to another folder, headless Chromium still draws it
with every picture (the screenshot is not blank and holds the plots' colours); at a page's width nothing
makes it scroll sideways."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from report_util import ALL, make

from sweep import report

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PAGE_PX = 794  # an A4 page's width at CSS's 96 px per inch
# Run in the page once it has loaded: how wide it is against the window, and the widest picture.
PROBE = ("<script>window.addEventListener('load', () => { const d = document.documentElement; document.title = "
         "[d.scrollWidth, d.clientWidth, Math.max(...[...document.images].map(i => i.getBoundingClientRect().right))]"
         ".join(' '); });</script>")


@pytest.fixture(scope="module", params=ALL)
def page(request, tmp_path_factory):
    folder = make(request.param, tmp_path_factory.mktemp(request.param))
    text = report.write_report(folder)
    with open(os.path.join(folder, "report.html"), encoding="utf-8") as f:
        return {"folder": folder, "md": text, "html": f.read()}


def test_every_picture_is_embedded(page):
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page["md"])
    sources = re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', page["html"])
    assert len(sources) == len(pictures) >= 1
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page["html"] and "https://" not in page["html"]  # nothing to fetch: reads offline


def test_tables_and_headings_are_html(page):
    assert page["html"].count("<h2>") == page["md"].count("\n## ")
    assert "<table>" in page["html"] and "<th>rank</th>" in page["html"]


def _screenshot(browser: str, html: str, folder) -> np.ndarray:
    import matplotlib.image as mpimg

    folder.mkdir()
    page = folder / "report.html"  # alone in its folder: no plots/ beside it, only what is inside the file
    page.write_text(html, encoding="utf-8")
    shot = folder / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={folder / 'profile'}", "--window-size=1200,4000", f"--screenshot={shot}", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert shot.is_file(), proc.stderr[-2000:]
    return mpimg.imread(str(shot))[..., :3]


def test_headless_chromium_draws_it_alone(page, tmp_path):
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip("no headless Chromium on this machine (Debian: apt-get install -y chromium)")
    pixels = _screenshot(browser, page["html"], tmp_path / "full")
    assert pixels.std() > 0.05  # not a blank page
    assert (pixels.min(axis=2) < 0.5).mean() > 0.005  # text and tables drawn
    # The same page whose pictures point at files that are not there (what a report.html that linked its PNGs
    # would show once moved): what the embedded page has more is what the browser drew from the base64.
    broken = _screenshot(browser, re.sub(r'src="data:[^"]+"', 'src="plots/missing.png"', page["html"]),
                         tmp_path / "broken")
    drawn, missing = (pixels.min(axis=2) < 0.95).mean(), (broken.min(axis=2) < 0.95).mean()
    assert drawn > missing + 0.001, (drawn, missing)  # 0.001: 4,800 pixels, a fifth of the emptiest plot


def test_at_a_pages_width_nothing_scrolls_sideways(page, tmp_path):
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip("no headless Chromium on this machine (Debian: apt-get install -y chromium)")
    probed = tmp_path / "report.html"
    probed.write_text(page["html"].replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000",
           f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={PAGE_PX},1100", "--dump-dom", probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    found = re.search(r"<title>(\d+) (\d+) (-?[\d.]+|-Infinity)</title>", proc.stdout)
    assert found, proc.stderr[-2000:]
    scroll, width, widest = int(found[1]), int(found[2]), float(found[3].replace("-Infinity", "0"))
    assert width <= PAGE_PX and scroll <= width, (scroll, width)  # no horizontal scroll
    assert widest <= width  # every picture shrinks to the page
