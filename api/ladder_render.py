"""Renderers of a :class:`api.ladder.Ladder`: SVG, mermaid ``sequenceDiagram`` text and a standalone HTML page.

Pure string building (no I/O, no template engine), so a 200-message ladder
renders in about a millisecond.

- :func:`render_svg`: one self-contained SVG (styles inside): a header per
  column (node name, ``ip:port``), lifelines, one ``<g class="arrow ...">`` per
  arrow with its label above the line, a time gutter on the left (time since
  the first message and the delta to the previous arrow). Requests are blue,
  1xx grey, 2xx green, 3xx amber, 4xx-6xx red; retransmissions are dashed.
- :func:`render_mermaid`: ``sequenceDiagram`` text for Markdown (GitLab, GitHub).
- :func:`render_html`: a page a person opens in a browser, with no external
  resource: the SVG inline and, beside it, a panel that shows the raw message
  of the arrow clicked (inline CSS and JS; the raw texts travel in a JSON
  ``<script>`` block). Each arrow element carries ``data-arrow-id``.

Notes (the Asterisk nodes' AMI/CEL events) take a row of their own in time
order: a box on their node's column (``<g class="note ami|cel" data-note-id>``),
``Note over`` in mermaid, and in the HTML page a click shows the event's fields.
"""

from __future__ import annotations

import html

import orjson

from api.ladder import Arrow, Ladder, Note

COL_WIDTH = 190
GUTTER = 150
HEADER = 64
ROW = 34
MARGIN = 20

_COLOURS = {
    "req": "#1f6feb",
    "r1xx": "#6e7781",
    "r2xx": "#1a7f37",
    "r3xx": "#9a6700",
    "r4xx": "#cf222e",
    "r5xx": "#cf222e",
    "r6xx": "#a40e26",
}

_STYLE = (
    "text{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}"
    ".hdr rect{fill:#f6f8fa;stroke:#d0d7de}.hdr .name{font-weight:bold;fill:#24292f}"
    ".hdr .ep{fill:#57606a;font-size:11px}"
    ".life{stroke:#d0d7de;stroke-width:1;stroke-dasharray:4 3}"
    ".gutter{fill:#57606a;font-size:11px}.gutter .delta{fill:#8c959f}"
    ".arrow line.l{stroke-width:1.6}.arrow.retx line.l{stroke-dasharray:6 4}"
    ".arrow .lbl{text-anchor:middle}.arrow line.hit{stroke:transparent;stroke-width:14}"
    ".note rect{fill:#fff8c5;stroke:#d4a72c}.note.cel rect{fill:#ddf4ff;stroke:#54aeff}"
    ".note text{font-size:11px;fill:#3b2300;text-anchor:middle}.note.cel text{fill:#0a3069}"
    + "".join(
        f".arrow.{k} line.l,.arrow.{k} path.l{{stroke:{c}}}.arrow.{k} .lbl{{fill:{c}}}" for k, c in _COLOURS.items()
    )
)


_INTERACTIVE = ".arrow,.note{cursor:pointer}.arrow:hover .lbl{font-weight:bold}.note:hover rect{stroke-width:2}"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _fmt_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.3f} s"
    return f"{ms:.1f} ms"


def render_svg(ladder: Ladder, *, interactive: bool = False) -> str:
    """The ladder as one SVG document (no external references)."""
    x_of = {c.id: GUTTER + MARGIN + i * COL_WIDTH + COL_WIDTH // 2 for i, c in enumerate(ladder.columns)}
    width = GUTTER + 2 * MARGIN + max(1, len(ladder.columns)) * COL_WIDTH
    rows = ladder.rows()
    height = HEADER + MARGIN + (len(rows) + 1) * ROW
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ladder" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f"<title>SIP ladder of {_esc(ladder.call_id)}</title>",
        f"<style>{_STYLE}{_INTERACTIVE if interactive else ''}</style>",
        "<defs>",
    ]
    out.extend(
        f'<marker id="h-{k}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        f'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="{c}"/></marker>'
        for k, c in _COLOURS.items()
    )
    out.append("</defs>")
    bottom = height - MARGIN // 2
    for column in ladder.columns:
        x = x_of[column.id]
        name = column.node or column.host
        out.append(
            f'<g class="hdr"><rect x="{x - COL_WIDTH // 2 + 6}" y="{MARGIN // 2}" width="{COL_WIDTH - 12}" '
            f'height="{HEADER - MARGIN}" rx="4"/>'
            f'<text class="name" x="{x}" y="{MARGIN // 2 + 18}" text-anchor="middle">{_esc(name)}</text>'
            f'<text class="ep" x="{x}" y="{MARGIN // 2 + 34}" text-anchor="middle">{_esc(column.id)}</text></g>'
            f'<line class="life" x1="{x}" y1="{HEADER - MARGIN // 2}" x2="{x}" y2="{bottom}"/>'
        )
    for i, row in enumerate(rows):
        y = HEADER + MARGIN + i * ROW + ROW // 2
        out.append(_arrow_svg(row, y, x_of) if isinstance(row, Arrow) else _note_svg(row, y, x_of))
    out.append("</svg>")
    return "".join(out)


def _arrow_svg(arrow: Arrow, y: int, x_of: dict[str, int]) -> str:
    x1, x2 = x_of[arrow.src], x_of[arrow.dst]
    classes = f"arrow {arrow.kind}" + (" retx" if arrow.retransmission else "")
    label = arrow.label + (" (retransmission)" if arrow.retransmission else "")
    title = f"{arrow.label} {arrow.src} → {arrow.dst} on {', '.join(arrow.seen_on)} at {arrow.message.ts.isoformat()}"
    gutter = (
        f'<text class="gutter" x="{MARGIN}" y="{y - 2}">{_fmt_ms(arrow.since_start_ms)}</text>'
        f'<text class="gutter delta" x="{MARGIN}" y="{y + 11}">+{_fmt_ms(arrow.delta_ms)}</text>'
    )
    if x1 == x2:  # a host talking to itself: a small loop
        shape = (
            f'<path class="l" d="M{x1},{y - 6}h40v12h-40" fill="none" marker-end="url(#h-{arrow.kind})"/>'
            f'<line class="hit" x1="{x1}" y1="{y}" x2="{x1 + 40}" y2="{y}"/>'
        )
        lx = x1 + 44
        text = f'<text class="lbl" x="{lx}" y="{y - 8}" style="text-anchor:start">{_esc(label)}</text>'
    else:
        end = x2 - 2 if x2 > x1 else x2 + 2
        shape = (
            f'<line class="l" x1="{x1}" y1="{y}" x2="{end}" y2="{y}" marker-end="url(#h-{arrow.kind})"/>'
            f'<line class="hit" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/>'
        )
        text = f'<text class="lbl" x="{(x1 + x2) // 2}" y="{y - 5}">{_esc(label)}</text>'
    return (
        f'<g class="{classes}" data-arrow-id="{_esc(arrow.id)}"><title>{_esc(title)}</title>{gutter}{shape}{text}</g>'
    )


def _note_svg(note: Note, y: int, x_of: dict[str, int]) -> str:
    x = x_of[note.column]
    width = COL_WIDTH - 16
    fits = width // 7  # characters of 11 px monospace in the box
    text = note.text if len(note.text) <= fits else note.text[: fits - 1] + "…"
    title = f"{note.source.upper()} {note.event} on {note.node} at {note.ts.isoformat()}: {note.text}"
    return (
        f'<g class="note {_esc(note.source)}" data-note-id="{_esc(note.id)}"><title>{_esc(title)}</title>'
        f'<text class="gutter" x="{MARGIN}" y="{y - 2}" style="text-anchor:start">{_fmt_ms(note.since_start_ms)}</text>'
        f'<rect x="{x - width // 2}" y="{y - 11}" width="{width}" height="20" rx="3"/>'
        f'<text x="{x}" y="{y + 3}">{_esc(text)}</text></g>'
    )


def _mermaid_text(text: str) -> str:
    """Mermaid message text: ``#`` and ``;`` as entity codes, no newlines."""
    return " ".join(text.replace("#", "#35;").replace(";", "#59;").split())


def render_mermaid(ladder: Ladder) -> str:
    """``sequenceDiagram`` text: one participant per column, one message per arrow (responses dashed)."""
    alias = {c.id: f"H{i}" for i, c in enumerate(ladder.columns)}
    lines = ["sequenceDiagram"]
    for column in ladder.columns:
        name = f"{column.node} {column.id}" if column.node else column.id
        lines.append(f"    participant {alias[column.id]} as {_mermaid_text(name)}")
    for row in ladder.rows():
        if isinstance(row, Note):
            lines.append(f"    Note over {alias[row.column]}: {_mermaid_text(row.text)}")
            continue
        op = "->>" if row.message.is_request else "-->>"
        text = row.label + (" (retransmission)" if row.retransmission else "")
        lines.append(f"    {alias[row.src]}{op}{alias[row.dst]}: {_mermaid_text(text)}")
    return "\n".join(lines) + "\n"


_PAGE_STYLE = (
    "body{margin:0;font-family:system-ui,-apple-system,Segoe UI,sans-serif;color:#24292f;background:#fff}"
    "header{padding:10px 16px;border-bottom:1px solid #d0d7de}header h1{font-size:16px;margin:0}"
    "header p{margin:4px 0 0;font-size:12px;color:#57606a}"
    "main{display:flex;height:calc(100vh - 62px)}#ladder{flex:1 1 auto;overflow:auto;padding:8px}"
    "#panel{flex:0 0 32%;border-left:1px solid #d0d7de;overflow:auto;padding:8px 12px;background:#f6f8fa}"
    "#panel h2{font-size:13px;margin:4px 0}#panel .meta{font-size:12px;color:#57606a;margin-bottom:6px}"
    "#raw{font:12px ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all;margin:0}"
    ".arrow.selected .lbl{font-weight:bold;text-decoration:underline}"
)

_PAGE_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('messages').textContent);
  var title = document.getElementById('sel-title'), meta = document.getElementById('sel-meta');
  var raw = document.getElementById('raw');
  var noteData = document.getElementById('notes');
  var notes = noteData ? JSON.parse(noteData.textContent) : {};
  var arrows = document.querySelectorAll('.arrow');
  var boxes = document.querySelectorAll('.note');
  function select(el) {
    arrows.forEach(function (a) { a.classList.remove('selected'); });
    boxes.forEach(function (a) { a.classList.remove('selected'); });
    el.classList.add('selected');
  }
  function show(el) {
    var m = data[el.getAttribute('data-arrow-id')];
    if (!m) { return; }
    select(el);
    title.textContent = m.label + '  ' + m.from + ' \\u2192 ' + m.to;
    meta.textContent = m.ts + ' \\u00b7 ' + m.transport + ' \\u00b7 seen on ' + m.seen_on.join(', ') +
      ' \\u00b7 Call-ID ' + m.call_id + (m.retransmission ? ' \\u00b7 retransmission' : '');
    raw.textContent = m.raw;
  }
  function showNote(el) {
    var n = notes[el.getAttribute('data-note-id')];
    if (!n) { return; }
    select(el);
    title.textContent = n.source.toUpperCase() + ' ' + n.event + ' on ' + n.node;
    meta.textContent = n.ts;
    raw.textContent = Object.keys(n.fields).map(function (k) { return k + ': ' + n.fields[k]; }).join('\\n');
  }
  arrows.forEach(function (el) { el.addEventListener('click', function () { show(el); }); });
  boxes.forEach(function (el) { el.addEventListener('click', function () { showNote(el); }); });
  document.body.setAttribute('data-arrows', String(arrows.length));
  document.body.setAttribute('data-notes', String(boxes.length));
})();
"""


def _script_json(value: object) -> str:
    """JSON inside <script>: "</" and "<!--" must not appear literally."""
    return orjson.dumps(value).decode().replace("<", "\\u003c")


def render_html(ladder: Ladder, note_fields: dict[str, dict[str, str]] | None = None) -> str:
    """A standalone page: the SVG ladder, and the raw message (or the Asterisk event's fields, from
    ``note_fields`` by note id) of what was clicked in a side panel."""
    messages = {}
    for arrow in ladder.arrows:
        doc = arrow.to_json()
        doc["raw"] = arrow.message.raw
        messages[arrow.id] = doc
    note_docs = {}
    for note in ladder.notes:
        doc = note.to_json()
        doc["fields"] = (note_fields or {}).get(note.id, {})
        note_docs[note.id] = doc
    payload = _script_json(messages)
    n = len(ladder.arrows)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Call {_esc(ladder.call_id)}</title><style>{_PAGE_STYLE}</style></head><body>"
        f"<header><h1>Call-ID {_esc(ladder.call_id)}</h1>"
        f"<p>{n} message{'s' if n != 1 else ''} across {len(ladder.columns)} hosts"
        + (f", {len(ladder.notes)} Asterisk event{'s' if len(ladder.notes) != 1 else ''}" if ladder.notes else "")
        + ". Click an arrow to see the message.</p>"
        f'</header><main><div id="ladder">{render_svg(ladder, interactive=True)}</div>'
        '<aside id="panel"><h2 id="sel-title">No message selected</h2><div class="meta" id="sel-meta"></div>'
        '<pre id="raw"></pre></aside></main>'
        f'<script type="application/json" id="messages">{payload}</script>'
        + (f'<script type="application/json" id="notes">{_script_json(note_docs)}</script>' if note_docs else "")
        + f"<script>{_PAGE_SCRIPT}</script></body></html>\n"
    )
