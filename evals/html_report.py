"""report.html: one self-contained page (inline CSS and SVG, a few lines of inline JS, no network).

Sections: the summary table (model x scorer means, errors, overall, pass rate); one bar chart per
scorer; for runs with two or more models, the first model (the base, by convention) against each
other one — wins/ties/losses bars and the bootstrap interval of the difference; and the row table
with every model's reply side by side, errors in red, and a switch to show only rows where the
models' scores differ.
"""

from __future__ import annotations

from html import escape

from evals.compare import compare_records

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;margin:24px;color:#1f2328}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.err{color:#b42318;background:#fef3f2}.muted{color:#656d76}.notice{background:#fff8c5;padding:6px 10px;margin:4px 0}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #d0d7de;padding:8px}
td.text{max-width:360px;white-space:pre-wrap;word-break:break-word}tr.same{}.hide-same tr.same{display:none}
"""
_COLORS = ["#0969da", "#1a7f37", "#bc4c00", "#8250df", "#bf3989", "#116329"]


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _bar_chart(title: str, values: list[tuple[str, float | None]], bounded: bool) -> str:
    width, bar_h, label_w = 420, 22, 150
    present = [v for _, v in values if v is not None]
    top = 1.0 if bounded else (max(present) if present else 1.0) or 1.0
    height = bar_h * len(values) + 30
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
             f'<text x="0" y="14" font-size="13" font-weight="600">{escape(title)}</text>']
    for i, (name, value) in enumerate(values):
        y = 22 + i * bar_h
        length = 0 if value is None else max(0.0, min(1.0, value / top)) * (width - label_w - 60)
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{escape(name[:24])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{bar_h - 6}" fill="{_COLORS[i % len(_COLORS)]}"/>')
        parts.append(f'<text x="{label_w + length + 4:.1f}" y="{y + 15}" font-size="12">{_fmt(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _wlt_bar(name: str, item: dict) -> str:
    width, label_w = 420, 110
    total = item["wins"] + item["ties"] + item["losses"] or 1
    span = width - label_w - 10
    w = item["wins"] / total * span
    t = item["ties"] / total * span
    lo = item["losses"] / total * span
    return (f'<svg width="{width}" height="24"><text x="0" y="16" font-size="12">{escape(name)}</text>'
            f'<rect x="{label_w}" y="4" width="{w:.1f}" height="16" fill="#1a7f37"><title>wins {item["wins"]}</title></rect>'
            f'<rect x="{label_w + w:.1f}" y="4" width="{t:.1f}" height="16" fill="#afb8c1"><title>ties {item["ties"]}</title></rect>'
            f'<rect x="{label_w + w + t:.1f}" y="4" width="{lo:.1f}" height="16" fill="#cf222e"><title>losses {item["losses"]}</title></rect></svg>')


def _assertion_lines(assertions: dict | None) -> str:
    """One line per promptfoo assertion of a row: pass / fail / error and why."""
    if not assertions:
        return ""
    lines = []
    for a in assertions["results"]:
        state = "error" if a.get("error") else ("pass" if a["pass"] else "fail")
        why = a.get("error") or a.get("reason") or ""
        cls = ' class="err"' if state != "pass" else ""
        lines.append(f"<div{cls}>{escape(a['type'])}: {state} · {escape(str(why))[:160]}</div>")
    return '<div class="muted">' + "".join(lines) + "</div>"


def render_html(summary: dict, records: list[dict]) -> str:
    models = list(summary.get("models", {}))
    scorers = summary.get("scorers", [])
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>tunepilot eval — {escape(summary.get('run_dir', ''))}</title><style>{_CSS}</style></head><body>"]
    ds = summary.get("dataset", {})
    out.append(f"<h1>Eval report</h1><p class=\"muted\">run {escape(str(summary.get('run_dir', '')))} · "
               f"dataset {escape(str(ds.get('path', '')))} ({escape(str(ds.get('encoding', '')))}) · "
               f"{summary.get('rows', 0)} rows · template <code>{escape(str(ds.get('template', '')))}</code></p>")
    for note in summary.get("notices", []):
        out.append(f'<div class="notice">{escape(note)}</div>')

    # Summary table.
    out.append("<h2>Summary</h2><table><tr><th>model</th>")
    out += [f"<th>{escape(s['name'])}{'' if s['higher_is_better'] else ' ↓'}</th>" for s in scorers]
    out.append("<th>overall</th><th>pass rate</th><th>errors</th></tr>")
    for m in models:
        info = summary["models"][m]
        out.append(f"<tr><td>{escape(m)}</td>")
        out += [f'<td class="num">{_fmt(info["scores"].get(s["name"]))}</td>' for s in scorers]
        err_class = ' err' if info["errors"] else ''
        out.append(f'<td class="num">{_fmt(info.get("overall"))}</td><td class="num">{_fmt(info.get("pass_rate"))}</td>'
                   f'<td class="num{err_class}">{info["errors"]}</td></tr>')
    out.append("</table><p class=\"muted\">↓ = lower is better. overall = weighted mean of the 0–1 scorers.</p>")
    for m in models:
        for name, detail in summary["models"][m].get("details", {}).items():
            if "per_label" in detail:
                out.append(f"<p><b>{escape(m)}</b> · {escape(name)}: accuracy {_fmt(detail['accuracy'])}, "
                           f"macro-F1 {_fmt(detail['macro_f1'])}</p><table><tr><th>label</th><th>precision</th>"
                           "<th>recall</th><th>F1</th><th>support</th></tr>")
                for label, v in detail["per_label"].items():
                    out.append(f"<tr><td>{escape(label)}</td><td class=\"num\">{_fmt(v['precision'])}</td>"
                               f"<td class=\"num\">{_fmt(v['recall'])}</td><td class=\"num\">{_fmt(v['f1'])}</td>"
                               f"<td class=\"num\">{v['support']}</td></tr>")
                out.append("</table>")
            elif "corpus_bleu" in detail:
                out.append(f"<p><b>{escape(m)}</b> · corpus BLEU {_fmt(detail['corpus_bleu'])} (tokenize {escape(detail['tokenize'])})</p>")

    for m in models:  # promptfoo assertions: pass / fail / could-not-run per type
        totals = summary["models"][m].get("assertions")
        if totals:
            out.append(f"<p><b>{escape(m)}</b> · tests passed {totals['tests_passed']} of {totals['tests']} "
                       f"({totals['tests_undecided']} undecided)</p><table><tr><th>assertion</th><th>passed</th>"
                       "<th>failed</th><th>could not run</th><th>pass rate</th></tr>")
            for kind, t in totals["by_type"].items():
                out.append(f"<tr><td>{escape(kind)}</td><td class=\"num\">{t['passed']}</td><td class=\"num\">{t['failed']}</td>"
                           f"<td class=\"num\">{t['errors']}</td><td class=\"num\">{_fmt(t['pass_rate'])}</td></tr>")
            out.append("</table>")

    # Per-scorer charts.
    out.append('<h2>Scores by scorer</h2><div class="charts">')
    for s in scorers:
        values = [(m, summary["models"][m]["scores"].get(s["name"])) for m in models]
        out.append(f'<div class="chart">{_bar_chart(s["name"], values, s["bounded"])}</div>')
    out.append("</div>")

    # Base vs each other model.
    directions = {s["name"]: s["higher_is_better"] for s in scorers}
    if len(models) >= 2:
        base = models[0]
        for other in models[1:]:
            cmp = compare_records([r for r in records if r["model"] == base], [r for r in records if r["model"] == other],
                                  directions)
            out.append(f"<h2>{escape(other)} vs {escape(base)}</h2><p class=\"muted\">{cmp['paired_rows']} paired rows; "
                       "green = rows where the second model scores better, grey = ties, red = worse.</p>")
            out.append("<table><tr><th>scorer</th><th>wins / ties / losses</th><th>mean A</th><th>mean B</th>"
                       "<th>B − A</th><th>95% CI</th><th>verdict</th></tr>")
            for name, item in cmp["scorers"].items():
                ci = item["ci95"]
                wlt = "{}/{}/{}".format(item["wins"], item["ties"], item["losses"])
                ci_text = "—" if not ci else "[{:.3f}, {:.3f}]".format(ci[0], ci[1])
                out.append(f"<tr><td>{escape(name)}</td><td>{_wlt_bar(wlt, item)}</td>"
                           f"<td class=\"num\">{_fmt(item['mean_a'])}</td><td class=\"num\">{_fmt(item['mean_b'])}</td>"
                           f"<td class=\"num\">{_fmt(item['mean_diff'])}</td>"
                           f"<td class=\"num\">{ci_text}</td>"
                           f"<td>{escape(item['verdict'])}</td></tr>")
            out.append("</table>")

    # Row table.
    out.append('<h2>Rows</h2><label><input type="checkbox" id="only-diff"> only rows where the models\' scores differ</label>')
    out.append('<table id="rows"><tr><th>#</th><th>input</th><th>expected</th>')
    out += [f"<th>{escape(m)}</th>" for m in models]
    out.append("</tr>")
    by_row: dict[int, dict[str, dict]] = {}
    for rec in records:
        by_row.setdefault(rec["row"], {})[rec["model"]] = rec
    for row_index in sorted(by_row):
        cells = by_row[row_index]
        first = next(iter(cells.values()))
        signatures = {repr(sorted((c.get("scores") or {}).items())) + str(c.get("error")) for c in cells.values()}
        row_class = "same" if len(signatures) == 1 and len(cells) > 1 else "diff"
        out.append(f'<tr class="{row_class}"><td class="num">{row_index + 1}</td>'
                   f'<td class="text">{escape(first.get("input") or "")}</td><td class="text">{escape(first.get("expected") or "")}</td>')
        for m in models:
            rec = cells.get(m)
            if rec is None:
                out.append('<td class="muted">not run</td>')
            elif rec.get("error"):
                out.append(f'<td class="text err">error: {escape(rec["error"])}</td>')
            else:
                scores = " · ".join(f"{escape(k)} {_fmt(v, 2)}" for k, v in rec["scores"].items())
                out.append(f'<td class="text">{escape(rec.get("output") or "")}<div class="muted">{scores}</div>'
                           f'{_assertion_lines(rec.get("assertions"))}</td>')
        out.append("</tr>")
    out.append("</table>")
    out.append("<script>document.getElementById('only-diff').addEventListener('change',function(e){"
               "document.getElementById('rows').classList.toggle('hide-same',e.target.checked);});</script>")
    out.append("</body></html>")
    return "\n".join(out)
