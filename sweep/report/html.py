"""report.html: report.md as one self-contained page (pictures inlined as base64) that opens offline."""
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
"""
IMG_SRC = re.compile(r'(<img\b[^>]*\bsrc=")([^"]+)(")')


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
    body = IMG_SRC.sub(lambda m: _inline(m, folder), body)
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def write_html(markdown_text: str, folder: str, title: str) -> str:
    path = os.path.join(folder, "report.html")
    atomic.write_text(path, to_html(markdown_text, folder, title))
    return path
