"""report.html: report.md as one self-contained page (pictures inlined as base64) that opens offline.

Printed (report.pdf, pdf.py) a figure is never cut by a page break, a heading stays with what follows it and
tables fit the page's width: on paper there is no scrolling a wide leaderboard."""
from __future__ import annotations

import base64
import html
import os
import re

from trainables import atomic

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2em; }
pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto; }
@page { margin: 14mm 12mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  h1, h2, h3 { break-after: avoid; }
  .figure { break-inside: avoid; }
  img { display: block; break-inside: avoid; max-height: 22cm; margin: 0.3em 0; }
  table { display: table; font-size: 6pt; }
  tr { break-inside: avoid; }
  th, td { padding: 0.1em 0.25em; overflow-wrap: break-word; }
  table:has(th:nth-child(12)) th { writing-mode: sideways-lr; text-align: left; vertical-align: bottom; }
  pre { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 8pt; }
}
"""
IMG_SRC = re.compile(r'(<img\b[^>]*\bsrc=")([^"]+)(")')
# A paragraph of pictures with the heading and the one paragraph of caption just before it, if any: on paper
# they stay on one page (Chromium does not honour `break-after: avoid` on a heading at a page's top).
FIGURE = re.compile(r'(?:<h[23]>(?:(?!</h[23]>).)*</h[23]>\n)?(?:<p>(?:(?!</p>|<img).)*</p>\n)?'
                    r'<p><img\b[^>]*>(?:\s*<img\b[^>]*>)*</p>', re.S)


def _inline(match: re.Match, folder: str) -> str:
    src = html.unescape(match.group(2))
    path = os.path.join(folder, src)
    if "://" in src or src.startswith("data:") or not os.path.isfile(path):
        return match.group(0)
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f"{match.group(1)}data:image/png;base64,{data}{match.group(3)}"


def to_html(markdown_text: str, folder: str, title: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"], output_format="html")
    body = FIGURE.sub(lambda m: f'<div class="figure">\n{m.group(0)}\n</div>', body)
    body = IMG_SRC.sub(lambda m: _inline(m, folder), body)
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def write_html(markdown_text: str, folder: str, title: str) -> str:
    path = os.path.join(folder, "report.html")
    atomic.write_text(path, to_html(markdown_text, folder, title))
    return path
