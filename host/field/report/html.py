"""The report page: one self-contained HTML file (plots and thumbnails inline, no network)."""

from __future__ import annotations

import base64
import html

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 2em; color: #222; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; }
.card { background: #f5f7fa; border-radius: 6px; padding: 0.6em 1em; min-width: 8em; }
.card b { display: block; font-size: 1.5em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.25em 0.7em; text-align: left; }
th { background: #f5f7fa; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img.plot { max-width: 100%; display: block; margin: 0.5em 0; }
.thumbs { display: flex; flex-wrap: wrap; gap: 0.6em; }
.thumb { width: 128px; font-size: 11px; text-align: center; }
.thumb img { width: 96px; height: 96px; image-rendering: pixelated; border: 1px solid #ccc; }
.none { color: #888; font-style: italic; }
.warn { color: #a94400; }
"""

# Lets a headless browser (and a person with devtools) see that every picture decoded.
CHECK_IMAGES = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (img) { return !(img.complete && img.naturalWidth > 0); });
  document.body.setAttribute('data-images', String(images.length));
  document.body.setAttribute('data-plots-loaded', broken.length === 0 ? 'yes' : 'no');
  if (broken.length) { console.error('report: ' + broken.length + ' image(s) failed to load'); }
});
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img(data: bytes, alt: str, cls: str = "plot", mime: str = "image/png") -> str:
    return f'<img class="{cls}" alt="{esc(alt)}" src="{data_uri(data, mime)}">'


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return esc(value)


def table(rows: list[dict], columns: list[tuple[str, str]], empty: str = "none") -> str:
    if not rows:
        return f'<p class="none">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(title)}</th>" for _, title in columns)
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f'<td class="n">{fmt(value)}</td>' if numeric else f"<td>{fmt(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def cards(items: list[tuple[str, object]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{fmt(value, 3 if isinstance(value, float) and abs(value) < 1 else 1)}</b>'
        f'{esc(name)}</div>' for name, value in items) + "</div>"


def thumbs(frames: list[dict], caption) -> str:
    if not frames:
        return '<p class="none">none</p>'
    out = []
    for frame in frames:
        picture = (img(frame["thumbnail"], frame.get("image") or "frame", cls="", mime="image/jpeg")
                   if frame.get("thumbnail") else '<div class="none">(no image captured)</div>')
        out.append(f'<div class="thumb">{picture}<br>{caption(frame)}</div>')
    return '<div class="thumbs">' + "".join(out) + "</div>"


def page(title: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    toc = " · ".join(f'<a href="#s{i}">{esc(name)}</a>' for i, (name, _) in enumerate(sections))
    body = "".join(f'<h2 id="s{i}">{esc(name)}</h2>{content}' for i, (name, content) in enumerate(sections))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style><script>{CHECK_IMAGES}</script></head>"
            f'<body><h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p><p>{toc}</p>{body}</body></html>')
