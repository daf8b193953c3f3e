"""Render report.json as a self-contained HTML page for reviewers and as a short Markdown summary.

Both renderers show only what the report holds: a missing value prints as an em dash, and a
section whose stage was skipped says why instead of showing zeros. The HTML loads nothing from
anywhere (inline CSS and SVG, no scripts), so it can be archived and opened offline.
"""
from __future__ import annotations

import json
import math
from html import escape

from fttool.training.model_ref import DEMO_MODEL_PREFIX

MISSING = "—"
FLOW_STEPS = (("input", "Input"), ("quarantined", "Quarantined"), ("duplicates", "Duplicates"),
              ("dropped_by_policy", "Dropped by policy"), ("kept", "Kept"), ("augmented", "Augmented"))
SPLITS = ("train", "validation", "test")
# Report sections named differently from the stage that writes them, to find why a null section was skipped.
SECTION_STAGES = {"augmentation": "augment", "training": "train", "evaluation": "evaluate"}
METRIC_DIRECTION = {"validation_loss": "lower is better", "test_loss": "lower is better",
                    "perplexity": "lower is better", "rougeL": "higher is better"}
BADGE_TONES = {"succeeded": "good", "pass": "good", "ran": "good", "cached": "info", "resumed": "info",
               "warn": "warn", "failed": "bad", "fail": "bad"}
SHORT_HASH = 12
PII_ACTIONS = {"scrub": "scrub: each finding anonymised by its operator",
               "drop": "drop: records with any finding removed"}
MAX_EXAMPLE_ROWS = 10

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:1.6em;margin:0 0 12px}
h2{font-size:1.25em;margin:32px 0 10px;padding-bottom:4px;border-bottom:2px solid #dde1e7}
h3{font-size:1.05em;margin:20px 0 8px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:.93em}
th,td{border:1px solid #d5dae1;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:230px}code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.85em;font-weight:600;border:1px solid}
.badge-good{background:#e3f4e8;color:#17622f;border-color:#9fd3ae}
.badge-info{background:#e4eefb;color:#1c4f94;border-color:#a9c5ec}
.badge-warn{background:#fdf1dc;color:#8a5300;border-color:#efc77f}
.badge-bad{background:#fbe3e3;color:#8f1d1d;border-color:#e9a2a2}
.badge-neutral{background:#eceef1;color:#444;border-color:#c8cdd4}
.banner{padding:12px 16px;margin:14px 0;border-radius:6px;border:2px solid #d08a00;background:#fff5e0;color:#6b4200}
.skipped{color:#5b6470;font-style:italic}nav{margin:10px 0 0;font-size:.92em}nav a{margin-right:12px;color:#1c4f94}
.share{display:inline-block;height:10px;background:#5b7fb5;vertical-align:middle;margin-right:6px}
svg.chart{display:block;margin:8px 0 16px;font-size:12px}svg.chart text{fill:#1d2330}
svg.chart .axis{stroke:#6b7480}svg.chart .grid{stroke:#e3e6ea}svg.chart .line{fill:none;stroke:#1c4f94;stroke-width:2}
.bar-input{fill:#5b7fb5}.bar-quarantined{fill:#c0504d}.bar-duplicates{fill:#d49a3a}.bar-dropped_by_policy{fill:#8e5ea2}
.bar-kept{fill:#3f9457}.bar-augmented{fill:#6bb7c4}
.bar-base{fill:#a9b4c4}.bar-tuned{fill:#1c4f94}svg.chart .ci{stroke:#1d2330;stroke-width:1.5}
pre{background:#f3f5f8;padding:10px;overflow:auto;font-size:.85em;max-height:480px}
@media print{body{background:#fff}main{padding:0}}
"""


# -- values ------------------------------------------------------------------------------------
def _get(value, *keys):
    """Walk nested mappings; None as soon as a level is missing, so null sections need no checks."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value) -> str:
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(item) for item in value) or MISSING
    if isinstance(value, dict):
        return "; ".join(f"{key}={fmt(item)}" for key, item in value.items()) or MISSING
    return str(value)


def fmt_percent(share) -> str:
    return f"{share * 100:.3g}%" if _is_number(share) else MISSING


def fmt_signed(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:+,}"
    return f"{value:+.4g}" if _is_number(value) else MISSING


def _short(digest) -> str:
    return digest[:SHORT_HASH] if isinstance(digest, str) else MISSING


def _counts_text(counts) -> str:
    """'A 3, B 1' from a {key: n} mapping, in the report's order; an empty mapping means none."""
    if not isinstance(counts, dict):
        return MISSING
    if not counts:
        return "none"
    return ", ".join(f"{key} {fmt(value)}" for key, value in counts.items())


def _demo_model(report: dict):
    """The demo base model's name when the run used one, so no reviewer mistakes it for a real model."""
    base_model = _get(report, "training", "base_model") or {}
    if base_model.get("demo"):
        return base_model.get("name") or "demo model"
    recipe_base = _get(report, "recipe", "resolved", "model", "base")
    if isinstance(recipe_base, str) and recipe_base.startswith(DEMO_MODEL_PREFIX):
        return recipe_base
    return None


def _skip_reason(report: dict, section: str):
    stage = SECTION_STAGES.get(section, section)
    for skipped in report.get("skipped_stages") or []:
        if skipped.get("name") == stage:
            return skipped.get("reason") or MISSING
    return None


def _metric_names(evaluation: dict) -> list[str]:
    """Metrics named in base, tuned or delta, first-seen order, so none is silently dropped."""
    names: dict[str, None] = {}
    for side in ("base", "tuned", "delta"):
        names.update(dict.fromkeys(evaluation.get(side) or {}))
    return list(names)


# -- HTML building blocks ----------------------------------------------------------------------
def _e(value) -> str:
    return escape(fmt(value))


def _badge(status) -> str:
    if status is None:
        return MISSING
    tone = BADGE_TONES.get(status, "neutral")
    return f'<span class="badge badge-{tone}">{escape(str(status))}</span>'


def _table(headers, rows, numeric=()) -> str:
    """A table of pre-escaped HTML cells; columns whose index is in `numeric` align right."""
    def cls(index):
        return ' class="num"' if index in numeric else ""

    head = "".join(f"<th{cls(i)}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv_table(pairs) -> str:
    rows = "".join(f"<tr><th>{escape(label)}</th><td>{cell}</td></tr>" for label, cell in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _count_table(first_header: str, counts, second_header: str = "Records") -> str:
    if not isinstance(counts, dict) or not counts:
        return f"<p>{escape(first_header)}: {escape(_counts_text(counts))}</p>"
    return _table([first_header, second_header], [[escape(str(k)), _e(v)] for k, v in counts.items()], numeric={1})


def _not_run(report: dict, section: str) -> str:
    reason = _skip_reason(report, section)
    text = f"Not run: {reason}." if reason else "No results in this report."
    return f'<p class="skipped">{escape(text)}</p>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


# -- charts ------------------------------------------------------------------------------------
def _flow_chart(counts: dict) -> str:
    values = [(key, label, counts.get(key)) for key, label in FLOW_STEPS]
    known = [value for _, _, value in values if _is_number(value)]
    if not known:
        return ""
    scale = max(known) or 1
    label_width, bar_space, row_height = 150, 440, 28
    width, height = label_width + bar_space + 90, row_height * len(values) + 8
    parts = [f'<svg class="chart" role="img" aria-label="Record flow" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>Record flow</title>']
    for index, (key, label, value) in enumerate(values):
        top = 4 + index * row_height
        length = bar_space * value / scale if _is_number(value) else 0
        parts.append(f'<text x="{label_width - 8}" y="{top + 18}" text-anchor="end">{escape(label)}</text>'
                     f'<rect class="bar-{key}" x="{label_width}" y="{top + 5}" width="{length:.1f}" '
                     f'height="{row_height - 10}"/>'
                     f'<text x="{label_width + length + 6:.1f}" y="{top + 18}">{_e(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _loss_chart(history, title: str = "Training loss") -> str:
    points = sorted((point["step"], point["loss"]) for point in history or []
                    if isinstance(point, dict) and _is_number(point.get("step")) and _is_number(point.get("loss")))
    if len(points) < 2:
        return '<p class="skipped">Fewer than two logged losses; no loss chart.</p>' if history else ""
    width, height = 660, 270
    left, right, top, bottom = 64, 20, 14, 44
    plot_width, plot_height = width - left - right, height - top - bottom
    first_step, last_step = points[0][0], points[-1][0]
    low, high = min(loss for _, loss in points), max(loss for _, loss in points)
    step_span, loss_span = (last_step - first_step) or 1, (high - low) or 1

    def x(step):
        return left + (step - first_step) / step_span * plot_width

    def y(loss):
        return top + (high - loss) / loss_span * plot_height

    parts = [f'<svg class="chart" role="img" aria-label="{title} by step" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{title} by step</title>']
    for loss in (high, (high + low) / 2, low):
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(loss):.1f}" y2="{y(loss):.1f}"/>'
                     f'<text x="{left - 6}" y="{y(loss) + 4:.1f}" text-anchor="end">{_e(float(loss))}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_height}"/>'
                 f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_height}" '
                 f'y2="{top + plot_height}"/>')
    for step in (first_step, last_step):
        parts.append(f'<text x="{x(step):.1f}" y="{top + plot_height + 16}" text-anchor="middle">{_e(step)}</text>')
    parts.append(f'<text x="{left + plot_width / 2:.1f}" y="{height - 6}" text-anchor="middle">step</text>')
    polyline = " ".join(f"{x(step):.1f},{y(loss):.1f}" for step, loss in points)
    parts.append(f'<polyline class="line" points="{polyline}"/></svg>')
    return "".join(parts)


# -- HTML sections -----------------------------------------------------------------------------
def _header_html(report: dict) -> str:
    run = report.get("run") or {}
    recipe = report.get("recipe") or {}
    rows = [("Run id", f'<span class="mono">{_e(run.get("id"))}</span>'), ("Status", _badge(run.get("status"))),
            ("Started", _e(run.get("started_at"))), ("Finished", _e(run.get("finished_at"))),
            ("Resumed", _e(run.get("resumed_at"))), ("Recipe", _e(recipe.get("path"))),
            ("Recipe fingerprint", f'<span class="mono">{_e(recipe.get("fingerprint"))}</span>'),
            ("fttool version", _e(run.get("fttool_version"))),
            ("Report schema version", _e(report.get("schema_version")))]
    html = f"<header><h1>Fine-tuning audit report: {_e(run.get('name'))}</h1>{_kv_table(rows)}"
    demo = _demo_model(report)
    if demo:
        note = _get(report, "training", "base_model", "note")
        html += (f'<div class="banner" role="alert"><strong>Demo base model: {escape(demo)}.</strong> '
                 "This run used the small offline demo model that fttool builds, not a production model; its "
                 "losses and scores show that the pipeline works and say nothing about model quality."
                 + (f" {escape(str(note))}" if note else "") + "</div>")
    links = (("data", "Data"), ("pii", "PII"), ("bias", "Bias"), ("augmentation", "Augmentation"),
             ("training", "Training"), ("privacy", "Privacy"), ("evaluation", "Evaluation"), ("fairness", "Fairness"),
             ("memorisation", "Memorisation"), ("review", "Review"),
             ("policy", "Policy and sign-off"), ("stages", "Stages"),
             ("environment", "Environment"), ("lineage", "Lineage"), ("recipe", "Recipe"))
    html += "<nav>" + "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in links) + "</nav></header>"
    return html


def _data_html(report: dict) -> str:
    data = report.get("data") or {}
    counts = data.get("counts") or {}
    html = ("<h3>Record flow</h3>"
            + _table([label for _, label in FLOW_STEPS], [[_e(counts.get(key)) for key, _ in FLOW_STEPS]],
                     numeric=set(range(len(FLOW_STEPS))))
            + "<p>Input = quarantined + duplicates + dropped by policy + kept; augmented records are added "
              "to the training split on top of the kept records.</p>"
            + _flow_chart(counts))

    split = data.get("split")
    assigned = _get(split, "counts") or {}
    ratios = _get(split, "ratios") or {}
    final = data.get("splits") or {}
    html += ("<h3>Splits</h3>"
             + _table(["Split", "Ratio", "Assigned by split stage", "In final file"],
                      [[name, _e(ratios.get(name)), _e(assigned.get(name)), _e(final.get(name))] for name in SPLITS],
                      numeric={1, 2, 3})
             + f"<p>Split seed: {_e(_get(split, 'seed'))}. Final files include augmented records and exclude "
               "records dropped by policy."
             + (f" The train file also holds {_e(counts['canaries'])} memorisation canary records (see Memorisation)."
                if counts.get("canaries") else "") + "</p>"
             + _split_details(split))

    ingest = data.get("ingest")
    html += "<h3>Ingest and quarantine</h3>"
    if ingest is None:
        html += _not_run(report, "ingest")
    else:
        source_rows = [[_e(s.get("path")), _e(s.get("tag")), _e(s.get("container")), _e(s.get("format")),
                        _e(s.get("lines")), _e(s.get("kept")), _e(s.get("quarantined"))]
                       for s in ingest.get("sources") or []]
        html += (_table(["Source", "Tag", "Container", "Format", "Records", "Kept", "Quarantined"], source_rows,
                        numeric={4, 5, 6})
                 + _count_table("Quarantine reason", ingest.get("quarantined_by_reason"))
                 + f"<p>Blank lines skipped: {_e(ingest.get('blank_lines'))}. Quarantined records are kept "
                   "in quarantine.jsonl with their reason.</p>")

    dedup = data.get("dedup")
    html += "<h3>Deduplication and normalisation</h3>"
    if dedup is None:
        html += _not_run(report, "dedup")
    else:
        rule_rows = []
        for rule, outcome in (dedup.get("rules") or {}).items():
            examples = (outcome or {}).get("example_ids") or []
            rule_rows.append([escape(rule), _e((outcome or {}).get("removed")),
                              f'<span class="mono">{_e(examples)}</span>'])
        html += (_table(["Rule", "Removed", "Example ids"], rule_rows, numeric={1})
                 + _count_table("Normalisation", dedup.get("normalised"), "Records changed"))
    return _section("data", "Data", html)


def _pii_html(report: dict) -> str:
    pii = report.get("pii")
    if pii is None:
        return _section("pii", "PII", _not_run(report, "pii"))
    drops = pii.get("action") == "drop"
    residual_total = pii.get("residual_total")
    residual_badge = (_badge("pass") + " none found" if residual_total == 0
                      else _badge("fail") + f" {_e(residual_total)} remaining" if _is_number(residual_total)
                      else MISSING)
    rows = [("Records scanned", _e(pii.get("records_scanned"))),
            ("Records with PII", _e(pii.get("records_with_pii"))),
            ("Action", escape(PII_ACTIONS.get(pii.get("action"), MISSING))),
            ("Entity types checked", _e(pii.get("entities_checked"))),
            ("Recipe recognizers", "none" if pii.get("custom_recognizers") == [] else _e(pii.get("custom_recognizers"))),
            ("NLP model", _e(pii.get("nlp_model"))), ("Score threshold", _e(pii.get("score_threshold")))]
    if drops:
        example_ids = pii.get("dropped_example_ids") or []
        rows.append(("Records dropped", _e(pii.get("dropped")) + (
            f' (e.g. <span class="mono">{_e(example_ids)}</span>)' if example_ids else "")))
    else:
        rows += [("Residual PII after scrubbing", residual_badge),
                 ("Strict (a residual fails the run)", _e(pii.get("strict")))]
    html = _kv_table(rows)
    entities, residual = pii.get("entities") or {}, pii.get("residual") or {}
    operators = pii.get("operators") or {}
    types = list(dict.fromkeys([*entities, *residual]))
    if drops:
        html += ("<h3>Entities by type</h3>"
                 + _table(["Entity type", "Detected (record dropped)"],
                          [[escape(t), _e(entities.get(t))] for t in types], numeric={1}))
    else:
        html += ("<h3>Entities by type</h3>"
                 + _table(["Entity type", "Detected and scrubbed", "Operator", "Residual after scrubbing"],
                          [[escape(t), _e(entities.get(t)), _e(operators.get(t)), _e(residual.get(t))]
                           for t in types], numeric={1, 3}))
    by_field = pii.get("by_field") or {}
    if by_field:
        field_types = list(dict.fromkeys(t for counts in by_field.values() for t in (counts or {})))
        html += ("<h3>Entities by field</h3>"
                 + _table(["Field", *field_types],
                          [[escape(field), *(_e((counts or {}).get(t)) for t in field_types)]
                           for field, counts in by_field.items()], numeric=set(range(1, len(field_types) + 1))))
    return _section("pii", "PII", html)


def _bias_audit_html(title: str, audit: dict, summary: str = "") -> str:
    """One audited field or mention category: its groups, the smallest group, the ratio and the reasons."""
    group_rows = []
    for group, stats in (audit.get("groups") or {}).items():
        share = (stats or {}).get("share")
        bar = f'<span class="share" style="width:{share * 120:.0f}px"></span>' if _is_number(share) else ""
        group_rows.append([escape(str(group)), _e((stats or {}).get("count")), bar + fmt_percent(share)])
    reasons = audit.get("reasons") or []
    return (f"<h3>{escape(title)} {_badge(audit.get('status'))}</h3>" + summary
            + _table(["Group", "Records", "Share"], group_rows, numeric={1})
            + f"<p>Smallest group: {_e(audit.get('min_count'))} records, {fmt_percent(audit.get('min_share'))} · "
              f"largest / smallest group: {_e(audit.get('imbalance_ratio'))}</p>"
            + ("<ul>" + "".join(f"<li>{escape(str(r))}</li>" for r in reasons) + "</ul>" if reasons else ""))


def _bias_html(report: dict) -> str:
    bias = report.get("bias")
    if bias is None:
        return _section("bias", "Bias", _not_run(report, "bias"))
    html = f"<p>Overall: {_badge(bias.get('status'))}</p>"
    for field, audit in (bias.get("fields") or {}).items():
        html += _bias_audit_html(field, audit or {})
    mentions = bias.get("mentions") or {}
    if mentions:
        html += ("<p>Demographic mentions: records whose text mentions a group of the lexicon, whole words only. "
                 "A record counts for every group it mentions, so shares (of the records mentioning the "
                 "category) can sum above 100%; groups never mentioned are listed and not checked.</p>")
    for category, audit in mentions.items():
        audit = audit or {}
        html += _bias_audit_html(
            f"{category} mentions", audit,
            f"<p>Records mentioning any group: {_e(audit.get('records_with_mention'))} of "
            f"{_e(audit.get('records'))} ({fmt_percent(audit.get('share_with_mention'))})</p>")
    return _section("bias", "Bias", html)


def _similarity_chart(method: str, histogram) -> str:
    """Bars of a method's candidate similarities, one per bin of the report's histogram."""
    counts, edges = (histogram or {}).get("counts") or [], (histogram or {}).get("edges") or []
    if len(edges) != len(counts) + 1 or not counts or not all(_is_number(v) for v in [*counts, *edges]):
        return ""
    bar_width, plot_height, top, bottom = 34, 90, 16, 22
    width, height = bar_width * len(counts) + 20, top + plot_height + bottom
    scale = max(counts) or 1
    label = f"Similarity to the parent text, {method} candidates"
    parts = [f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{escape(label)}</title>']
    for index, count in enumerate(counts):
        length = plot_height * count / scale
        x = 10 + index * bar_width
        parts.append(f'<rect class="bar-augmented" x="{x + 2}" y="{top + plot_height - length:.1f}" '
                     f'width="{bar_width - 4}" height="{length:.1f}"/>'
                     f'<text x="{x + bar_width / 2}" y="{top + plot_height - length - 3:.1f}" '
                     f'text-anchor="middle">{_e(count)}</text>')
    for index in (0, len(counts) // 2, len(counts)):
        parts.append(f'<text x="{10 + index * bar_width}" y="{height - 6}" text-anchor="middle">'
                     f'{_e(edges[index])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _augmentation_html(report: dict) -> str:
    augmentation = report.get("augmentation")
    if augmentation is None:
        return _section("augmentation", "Augmentation", _not_run(report, "augmentation"))
    methods = {method: stats or {} for method, stats in (augmentation.get("methods") or {}).items()}
    rows = [[escape(method), _e(stats.get("generated")), _e(stats.get("kept")),
             escape(_counts_text(stats.get("rejected")))] for method, stats in methods.items()]
    html = _table(["Method", "Generated", "Kept", "Rejected by reason"], rows, numeric={1, 2})
    html += (f"<p>Meaning check: {_e(augmentation.get('similarity_model'))} · PII re-scan: "
             f"{_e(_get(augmentation, 'pii_scan', 'nlp_model'))}, score threshold "
             f"{_e(_get(augmentation, 'pii_scan', 'score_threshold'))}</p>"
             if "similarity_model" in augmentation else "")
    scored = {method: stats["similarity"] for method, stats in methods.items() if stats.get("similarity")}
    if scored:
        html += ("<h3>Similarity of candidates to their parent text</h3>"
                 "<p>Cosine similarity of sentence embeddings, the lowest over a candidate's reworded fields; "
                 "candidates below the method's min_similarity were rejected. Histogram bins span 0 to 1 "
                 "(below 0 counts in the first).</p>"
                 + _table(["Method", "Candidates", "Min", "P10", "Median", "P90", "Max"],
                          [[escape(method), *(_e(dist.get(key)) for key in
                                              ("count", "min", "p10", "median", "p90", "max"))]
                           for method, dist in scored.items()], numeric={1, 2, 3, 4, 5, 6})
                 + "".join(f"<p>{escape(method)}</p>" + _similarity_chart(method, dist.get("histogram"))
                           for method, dist in scored.items()))
    # Reports written before examples were kept per method list them once for the whole stage.
    kept = [(method, example) for method, stats in methods.items() for example in stats.get("examples") or []]
    kept += [(MISSING, example) for example in augmentation.get("examples") or []]
    if kept:
        html += ("<h3>Generated records (examples)</h3>"
                 + _table(["Method", "Id", "Parent id"],
                          [[escape(method), f'<span class="mono">{_e(ex.get("id"))}</span>',
                            f'<span class="mono">{_e(ex.get("parent_id"))}</span>']
                           for method, ex in kept[:MAX_EXAMPLE_ROWS]]))
    rejected = [[escape(method), escape(str(reason)), "<br>".join(f'<span class="mono">{_e(i)}</span>' for i in ids)]
                for method, stats in methods.items() for reason, ids in (stats.get("rejected_examples") or {}).items()]
    if rejected:
        html += "<h3>Rejected candidates (parent ids, examples)</h3>" + _table(["Method", "Reason", "Parent ids"],
                                                                             rejected)
    return _section("augmentation", "Augmentation", html)


def _parameters_cell(training: dict) -> str:
    trainable, total = training.get("trainable_parameters"), training.get("total_parameters")
    cell = f"{fmt(trainable)} trainable of {fmt(total)}"
    if _is_number(trainable) and _is_number(total) and total:
        cell += f" ({fmt_percent(trainable / total)})"
    return escape(cell)


def _training_html(report: dict) -> str:
    training = report.get("training")
    if training is None:
        return _section("training", "Training", _not_run(report, "training"))
    base_model = training.get("base_model") or {}
    rows = [("Method", _e(training.get("method"))), ("Base model", _e(base_model.get("name"))),
            ("Base model licence", _e(base_model.get("license"))), ("Demo model", _e(base_model.get("demo")))]
    rows += [(f"LoRA {key}", _e(value)) for key, value in (training.get("lora") or {}).items()]
    rows += [("Parameters", _parameters_cell(training)), ("Steps", _e(training.get("steps"))),
             ("Epochs", _e(training.get("epochs"))), ("Final training loss", _e(training.get("train_loss"))),
             ("Validation loss", _e(training.get("validation_loss"))),
             ("Share of tokens trained on", escape(fmt_percent(training.get("trained_token_share")))),
             ("Prompt format", _e(training.get("prompt_format"))), ("Precision", _e(training.get("precision"))),
             ("Resumed from step", _e(training.get("resumed_from_step"))),
             ("Stopped early", _e((training.get("early_stopping") or {}).get("stopped_early"))),
             ("Device", _e(training.get("device"))), ("Seconds", _e(training.get("seconds")))]
    launch, tracking = training.get("launch") or {}, training.get("tracking") or {}
    if launch:
        rows.append(("Processes", _e(f"{launch.get('num_processes')} ({launch.get('strategy')}, accelerate launch)")))
    if tracking:
        rows.append(("Tracked in MLflow", f'<span class="mono">{_e(tracking.get("uri"))}</span>, experiment '
                                          f'<span class="mono">{_e(tracking.get("experiment_id"))}</span>, run '
                                          f'<span class="mono">{_e(tracking.get("run_id"))}</span>'))
    html = _kv_table(rows)
    if training.get("loss_history"):
        html += "<h3>Training loss</h3>" + _loss_chart(training["loss_history"])
    if training.get("validation_loss_history"):
        html += "<h3>Validation loss</h3>" + _loss_chart(training["validation_loss_history"], "Validation loss")
    return _section("training", "Training", html)


def _privacy_unit(privacy: dict) -> str:
    if privacy.get("unit") == "source record":
        return f"source record (with its augmented copies: up to {fmt(privacy.get('max_examples_per_unit'))} examples)"
    return fmt(privacy.get("unit"))


def _privacy_html(report: dict) -> str:
    privacy = report.get("privacy") or {}
    if not privacy.get("enabled"):
        return _section("privacy", "Differential privacy", '<p class="skipped">Not differentially private: '
                        "train.privacy is off, or no model was trained.</p>")
    epsilons = privacy.get("epsilons") or {}
    steps = f"{fmt(privacy.get('steps'))} of {fmt(privacy.get('planned_steps'))} planned"
    if privacy.get("stopped_by_budget"):
        steps += ", stopped before the budget would be exceeded"
    rows = [("Guarantee", escape(f"(ε = {fmt(privacy.get('epsilon'))}, δ = {fmt(privacy.get('delta'))})-DP per "
                                 f"{_privacy_unit(privacy)}")),
            ("Budget (target ε)", _e(privacy.get("target_epsilon"))),
            ("Accountant", escape(f"{fmt(privacy.get('accountant')).upper()} (ε by PRV {fmt(epsilons.get('prv'))}, "
                                  f"by RDP {fmt(epsilons.get('rdp'))})")),
            ("δ", escape(f"{fmt(privacy.get('delta'))} ({fmt(privacy.get('delta_source'))})")),
            ("Noise multiplier",
             escape(f"{fmt(privacy.get('noise_multiplier'))} ({fmt(privacy.get('noise_source'))})")),
            ("Clipping norm per unit", _e(privacy.get("max_grad_norm"))),
            ("Sampling", escape(f"{fmt(privacy.get('sampler'))}, rate {fmt(privacy.get('sample_rate'))}, about "
                                f"{fmt(privacy.get('expected_units_per_step'))} units per step")),
            ("Steps", escape(steps)),
            ("Privacy units", escape(f"{fmt(privacy.get('units'))} ({fmt(privacy.get('examples'))} train examples)")),
            ("Trainable parameters", _e(privacy.get("trainable_parameters")))]
    html = "".join(f'<div class="banner" role="alert">{escape(str(warning))}</div>'
                   for warning in privacy.get("warnings") or [])
    return _section("privacy", "Differential privacy", html + _kv_table(rows))


def _direction(evaluation: dict, name: str):
    """'lower' or 'higher' (is better), as the report states it; older reports name a few metrics only."""
    stated = (evaluation.get("directions") or {}).get(name)
    if stated:
        return stated
    known = METRIC_DIRECTION.get(name)
    return known.split()[0] if known else None


def _better(direction, delta) -> str:
    if direction is None or not _is_number(delta):
        return MISSING
    if delta == 0:
        return "same"
    return "better" if (delta < 0) == (direction == "lower") else "worse"


def _evaluation_html(report: dict) -> str:
    evaluation = report.get("evaluation")
    if evaluation is None:
        return _section("evaluation", "Evaluation", _not_run(report, "evaluation"))
    base, tuned, delta = (evaluation.get(side) or {} for side in ("base", "tuned", "delta"))
    primary = evaluation.get("primary_metric") or {}
    rows = []
    for name in _metric_names(evaluation):
        direction = _direction(evaluation, name)
        label = escape(name) + (f" <small>({direction} is better)</small>" if direction else "")
        if name == primary.get("name"):
            label = f"<strong>{label}</strong> (primary)"
        rows.append([label, _e(base.get(name)), _e(tuned.get(name)), escape(fmt_signed(delta.get(name))),
                     escape(_better(direction, delta.get(name)))])
    html = (f"<p>Test records evaluated: {_e(evaluation.get('samples'))}"
            + (f"; task: {_e(evaluation.get('task'))}" if evaluation.get("task") else "")
            + (f"; labels: {_e(evaluation.get('labels'))}" if evaluation.get("labels") else "") + ".</p>"
            + _table(["Metric", "Base model", "Tuned model", "Change", "Tuned vs base"], rows, numeric={1, 2, 3}))
    if primary:
        verdict = "improved" if primary.get("improved") else "did not improve"
        html += (f"<p>Primary metric <code>{_e(primary.get('name'))}</code> ({_e(primary.get('direction'))}): "
                 f"{_badge('pass' if primary.get('improved') else 'fail')} the tuned model {verdict} on its base "
                 f"({_e(primary.get('base'))} → {_e(primary.get('tuned'))}, "
                 f"{escape(fmt_signed(primary.get('delta')))}).</p>")
    forgetting = evaluation.get("forgetting")
    if forgetting:
        html += ("<h3>Forgetting check</h3>"
                 + _kv_table([("General text", f'<span class="mono">{_e(forgetting.get("path"))}</span>'),
                              ("Passages", _e(forgetting.get("passages"))),
                              ("Base perplexity", _e(forgetting.get("base_perplexity"))),
                              ("Tuned perplexity", _e(forgetting.get("tuned_perplexity"))),
                              ("Increase", escape(fmt_percent(forgetting.get("increase")))),
                              ("Allowed increase", escape(fmt_percent(forgetting.get("max_increase")))),
                              ("Status", _badge(forgetting.get("status")))]))
    html += f"<p>Decoding (the same for both models): {_e(evaluation.get('decoding'))}</p>"
    return _section("evaluation", "Evaluation", html)


def _interval_text(interval) -> str:
    if not isinstance(interval, list) or len(interval) != 2 or not all(_is_number(v) for v in interval):
        return MISSING
    return f"[{fmt(float(interval[0]))}, {fmt(float(interval[1]))}]"


def _group_chart(title: str, groups: dict, results: dict) -> str:
    """Base and tuned bars per group on a 0-1 scale, with confidence-interval whiskers; each group is labelled
    with its record count, and groups left out of the comparison say so."""
    label_width, bar_space, bar_height, row_height = 220, 420, 10, 32
    width, height = label_width + bar_space + 60, row_height * len(groups) + 30
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>']

    def x(value):
        return label_width + bar_space * min(max(value, 0.0), 1.0)

    for index, (group, info) in enumerate(groups.items()):
        top = 4 + index * row_height
        info = info or {}
        label = f"{group} ({fmt(info.get('count'))}{'' if info.get('compared') else ', not compared'})"
        parts.append(f'<text x="{label_width - 8}" y="{top + 17}" text-anchor="end">{escape(label)}</text>')
        for offset, side in ((3, "base"), (3 + bar_height + 2, "tuned")):
            point = _get(results, side, "by_group", group) or {}
            value, interval = point.get("value"), point.get("ci")
            if not _is_number(value):
                continue
            parts.append(f'<rect class="bar-{side}" x="{label_width}" y="{top + offset}" '
                         f'width="{x(value) - label_width:.1f}" height="{bar_height}"/>')
            if isinstance(interval, list) and len(interval) == 2 and all(_is_number(v) for v in interval):
                middle = top + offset + bar_height / 2
                parts.append(f'<line class="ci" x1="{x(interval[0]):.1f}" x2="{x(interval[1]):.1f}" '
                             f'y1="{middle}" y2="{middle}"/>')
    axis = 4 + len(groups) * row_height
    parts.append(f'<line class="axis" x1="{label_width}" x2="{label_width + bar_space}" y1="{axis}" y2="{axis}"/>')
    for tick in (0, 0.5, 1):
        parts.append(f'<text x="{x(tick):.1f}" y="{axis + 16}" text-anchor="middle">{tick:g}</text>')
    parts.append(f'<rect class="bar-base" x="{label_width + bar_space - 150}" y="{axis + 6}" width="10" height="10"/>'
                 f'<text x="{label_width + bar_space - 136}" y="{axis + 15}">base</text>'
                 f'<rect class="bar-tuned" x="{label_width + bar_space - 90}" y="{axis + 6}" width="10" height="10"/>'
                 f'<text x="{label_width + bar_space - 76}" y="{axis + 15}">tuned</text></svg>')
    return "".join(parts)


def _fairness_html(report: dict) -> str:
    fairness = report.get("fairness") or {}
    if not fairness.get("evaluated"):
        return _section("fairness", "Fairness by group", f'<p class="skipped">Not evaluated: '
                        f'{escape(str(fairness.get("reason") or MISSING))}.</p>')
    thresholds, bootstrap = fairness.get("thresholds") or {}, fairness.get("bootstrap") or {}
    html = (f"<p>Status: {_badge(fairness.get('status'))}. Each metric is a mean over the test records of each "
            "group, for the base and the tuned model; intervals are "
            f"{escape(fmt_percent(bootstrap.get('confidence')))} percentile bootstrap intervals from "
            f"{_e(bootstrap.get('resamples'))} resamples (seed {_e(bootstrap.get('seed'))}). The tuned model's "
            "difference (highest minus lowest group) and ratio (lowest over highest) are checked over groups with "
            f"at least {_e(thresholds.get('min_group_size'))} records: above a difference of "
            f"{_e(thresholds.get('max_difference'))} or below a ratio of {_e(thresholds.get('min_ratio'))} warns"
            + (f"; above {_e(thresholds['fail_above_difference'])} fails" if thresholds.get("fail_above_difference")
               is not None else "")
            + (f"; below {_e(thresholds['fail_below_ratio'])} fails" if thresholds.get("fail_below_ratio")
               is not None else "") + ".</p>")
    for field, result in (fairness.get("fields") or {}).items():
        groups = result.get("groups") or {}
        html += (f"<h3>{escape(str(field))} {_badge(result.get('status'))}</h3>"
                 + "".join(f"<p>{_e(reason)}</p>" for reason in result.get("reasons") or []))
        for metric, results in (result.get("metrics") or {}).items():
            rows = []
            for group, info in groups.items():
                cells = []
                for side in ("base", "tuned"):
                    point = _get(results, side, "by_group", group) or {}
                    cells += [_e(point.get("value")), escape(_interval_text(point.get("ci")))]
                rows.append([escape(str(group)), _e(info.get("count")),
                             "yes" if info.get("compared") else "no (too few records; not compared)", *cells])
            for name in ("difference", "ratio"):
                rows.append([f"<em>{name}</em>", "", "",
                             *(cell for side in ("base", "tuned")
                               for cell in (_e(_get(results, side, name)),
                                            escape(_interval_text(_get(results, side, name + "_ci")))))])
            html += (f"<p><strong>{escape(metric)} by {escape(str(field))}</strong></p>"
                     + _table(["Group", "Records", "Compared", "Base", "Base interval", "Tuned", "Tuned interval"],
                              rows, numeric={1, 3, 5})
                     + _group_chart(f"{metric} by {field}", groups, results))
    return _section("fairness", "Fairness by group", html)


def _stages_html(report: dict) -> str:
    rows = [[escape(str(stage.get("name"))), _badge(stage.get("status")), _e(stage.get("seconds")),
             _e(stage.get("records_in")), _e(stage.get("records_out")), escape(_counts_text(stage.get("removed"))),
             escape(_counts_text(stage.get("added"))),
             f'<span class="mono" title="{escape(str(stage.get("fingerprint")))}">'
             f'{escape(_short(stage.get("fingerprint")))}</span>']
            for stage in report.get("stages") or []]
    html = ("<p>ran: executed in this run · cached: outputs reused from an earlier run with the same fingerprint · "
            "resumed: finished before this run was resumed.</p>"
            + _table(["Stage", "Status", "Seconds", "Records in", "Records out", "Removed", "Added", "Fingerprint"],
                     rows, numeric={2, 3, 4}))
    skipped = report.get("skipped_stages") or []
    html += "<h3>Skipped stages</h3>" + (
        _table(["Stage", "Reason"], [[_e(s.get("name")), _e(s.get("reason"))] for s in skipped]) if skipped
        else "<p>No stage was skipped.</p>")
    return _section("stages", "Stages", html)


def _environment_html(report: dict) -> str:
    environment = report.get("environment") or {}
    recipe_git = environment.get("recipe_git")
    memory = environment.get("memory_bytes")
    html = _kv_table([("Python", _e(environment.get("python"))), ("Platform", _e(environment.get("platform"))),
                      ("Machine", _e(environment.get("machine"))), ("CPUs", _e(environment.get("cpu_count"))),
                      ("fttool git commit",
                       f'<span class="mono">{_e(environment.get("fttool_git_commit"))}</span>'),
                      ("CPU model", _e(environment.get("cpu_model"))),
                      ("Memory", escape(f"{memory / 2 ** 30:.1f} GiB") if _is_number(memory) else MISSING),
                      ("GPUs", _e(environment.get("gpus"))),
                      ("Recipe repository commit",
                       f'<span class="mono">{_e(_get(recipe_git, "commit"))}</span>'
                       + (" (uncommitted changes)" if _get(recipe_git, "uncommitted_changes") else "")
                       if recipe_git else "not in a git repository")])
    packages = environment.get("packages") or {}
    html += _table(["Package", "Version"], [[escape(name), _e(version)] for name, version in packages.items()])
    return _section("environment", "Environment", html)


def _lineage_html(report: dict) -> str:
    rows = [[f'<span class="mono">{_e(a.get("path"))}</span>', _e(a.get("kind")), _e(a.get("stage")),
             f'<span class="mono" title="{escape(str(a.get("sha256")))}">{escape(_short(a.get("sha256")))}</span>',
             "<br>".join(f'<span class="mono">{escape(p)}</span>' for p in a.get("parents") or []) or MISSING]
            for a in _get(report, "lineage", "artifacts") or []]
    html = ("<p>Every source and output with its sha256 (hover for the full digest) and the files it was "
            "made from.</p>" + _table(["Path", "Kind", "Stage", "sha256", "Parents"], rows))
    return _section("lineage", "Lineage", html)


def _recipe_html(report: dict) -> str:
    resolved = _get(report, "recipe", "resolved")
    body = (f"<details><summary>Resolved recipe, defaults filled in</summary>"
            f"<pre>{escape(json.dumps(resolved, indent=2, ensure_ascii=False))}</pre></details>"
            if resolved is not None else f"<p>{MISSING}</p>")
    return _section("recipe", "Recipe", body)


def _exposure_chart(memorisation: dict) -> str:
    """Each canary's exposure after tuning (dark) and under the base model (light), with the limit as a line."""
    canaries = [c for c in memorisation.get("canaries") or [] if _is_number(c.get("exposure_bits"))]
    top_bits = memorisation.get("max_measurable_bits")
    if not canaries or not _is_number(top_bits) or top_bits <= 0:
        return ""
    label_width, bar_space, bar_height, row_height = 110, 420, 9, 26
    width, height = label_width + bar_space + 70, row_height * len(canaries) + 34
    title = "Canary exposure in bits, tuned and base model"
    parts = [f'<svg class="chart" role="img" aria-label="{title}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{title}</title>']

    def x(bits):
        return label_width + bar_space * min(max(bits, 0.0), top_bits) / top_bits

    for index, canary in enumerate(canaries):
        top = 4 + index * row_height
        tuned, base = canary["exposure_bits"], canary.get("base_exposure_bits")
        parts.append(f'<text x="{label_width - 8}" y="{top + 14}" text-anchor="end">canary {_e(canary.get("index"))}'
                     f'</text><rect class="bar-tuned" x="{label_width}" y="{top + 2}" width="{x(tuned) - label_width:.1f}" '
                     f'height="{bar_height}"/><text x="{x(tuned) + 5:.1f}" y="{top + 10}">{_e(float(tuned))}</text>')
        if _is_number(base):
            parts.append(f'<rect class="bar-base" x="{label_width}" y="{top + 2 + bar_height}" '
                         f'width="{x(base) - label_width:.1f}" height="{bar_height}"/>')
    limit = memorisation.get("limit_bits")
    bottom = row_height * len(canaries) + 4
    if _is_number(limit):
        parts.append(f'<line class="axis" x1="{x(limit):.1f}" x2="{x(limit):.1f}" y1="0" y2="{bottom}" '
                     f'stroke-dasharray="4 3"/><text x="{x(limit):.1f}" y="{bottom + 14}" text-anchor="middle">'
                     f'limit {_e(float(limit))}</text>')
    parts.append(f'<text x="{label_width}" y="{bottom + 28}">0</text><text x="{label_width + bar_space}" '
                 f'y="{bottom + 28}" text-anchor="end">{_e(float(top_bits))} bits (most measurable)</text></svg>')
    return "".join(parts)


def _memorisation_html(report: dict) -> str:
    memorisation = report.get("memorisation")
    if memorisation is None:
        return _section("memorisation", "Memorisation", _not_run(report, "memorisation"))
    controls = memorisation.get("controls") or {}
    base = memorisation.get("base_model") or {}
    rows = [("Status", _badge(memorisation.get("status"))),
            ("Most exposed canary", escape(f"{fmt(memorisation.get('max_exposure_bits'))} bits (limit "
                                           f"{fmt(memorisation.get('limit_bits'))} bits)")),
            ("Mean canary exposure", escape(f"{fmt(memorisation.get('mean_exposure_bits'))} bits")),
            ("Never-planted controls", escape(f"mean {fmt(controls.get('mean_exposure_bits'))}, max "
                                              f"{fmt(controls.get('max_exposure_bits'))} bits "
                                              f"({fmt(controls.get('count'))} secrets)")),
            ("Base model, canaries", escape(f"mean {fmt(_get(base, 'canaries', 'mean_exposure_bits'))}, max "
                                            f"{fmt(_get(base, 'canaries', 'max_exposure_bits'))} bits")),
            ("Canaries × repetitions", escape(f"{fmt(len(memorisation.get('canaries') or []))} × "
                                              f"{fmt(memorisation.get('repetitions'))} = "
                                              f"{fmt(memorisation.get('planted_records'))} train records")),
            ("References", escape(f"{fmt(memorisation.get('references'))} (at most "
                                  f"{fmt(memorisation.get('max_measurable_bits'))} bits can be shown)")),
            ("Template", f"<code>{_e(memorisation.get('template'))}</code>"),
            ("Method", _e(memorisation.get("method")))]
    canary_rows = [[_e(c.get("index")), _e(c.get("rank")), _e(c.get("exposure_bits")), _e(c.get("base_rank")),
                    _e(c.get("base_exposure_bits"))] for c in memorisation.get("canaries") or []]
    html = ("<p>Random secrets were planted in the train split only; exposure says how far above chance the tuned "
            "model ranks them among secrets it never saw. Secrets are not shown. Chart: dark bars after tuning, light bars "
            "under the base model.</p>" + _kv_table(rows)
            + _exposure_chart(memorisation)
            + _table(["Canary", "Rank", "Exposure (bits)", "Base rank", "Base exposure (bits)"], canary_rows,
                     numeric={0, 1, 2, 3, 4}))
    return _section("memorisation", "Memorisation", html)


def _review_html(report: dict) -> str:
    review = report.get("review")
    if review is None:
        return _section("review", "Human review", '<p class="skipped">No human review imported: run '
                        "<code>fttool review export RUN_DIR</code>, have the sheet rated, then "
                        "<code>fttool review import RUN_DIR ratings.csv</code>.</p>")
    means = review.get("mean_rating") or {}
    scale = review.get("scale") or {}
    rows = [("Ratings file", f'<span class="mono">{_e(review.get("file"))}</span> '
                             f'<span class="mono" title="{escape(str(review.get("sha256")))}">'
                             f'{escape(_short(review.get("sha256")))}</span>'),
            ("Imported", _e(review.get("imported_at"))),
            ("Predictions rated", escape(f"{fmt(review.get('rated'))} of {fmt(review.get('predictions'))} "
                                         f"({fmt(review.get('unrated'))} unrated)")),
            ("Mean rating, base model", _e(means.get("base"))), ("Mean rating, tuned model", _e(means.get("tuned"))),
            ("Scale", escape(f"{fmt(scale.get('min'))} to {fmt(scale.get('max'))}"))]
    return _section("review", "Human review", _kv_table(rows) + _count_table("Preferred", review.get("preference"),
                                                                              "Outputs"))


def _policy_html(report: dict) -> str:
    policy = report.get("policy") or {}
    if policy.get("evaluated"):
        html = (f"<p>Policy <code>{_e(policy.get('policy'))}</code> ({_e(policy.get('path'))}, sha256 "
                f'<span class="mono">{escape(_short(policy.get("sha256")))}</span>), checked on '
                f"{_e(policy.get('checked_on'))}: {_badge('pass' if policy.get('passed') else 'fail')}</p>")
        rows = [[escape(str(rule.get("id"))), _e(rule.get("severity")),
                 _badge({"passed": "pass", "failed": "fail", "waived": "warn"}.get(rule.get("status"), rule.get("status"))),
                 escape(str(rule.get("description") or MISSING)),
                 "<br>".join(escape(str(f)) for f in rule.get("findings") or []) or MISSING]
                for rule in policy.get("rules") or [] if rule.get("status") != "not_applicable"]
        html += _table(["Rule", "Severity", "Outcome", "Description", "Findings"], rows)
    else:
        html = f'<p class="skipped">No policy was applied when the report was written: {_e(policy.get("how"))}</p>'
    signoffs = report.get("signoff")
    html += "<h3>Sign-off</h3>" + (
        _table(["By", "Role", "At", "Approved report sha256", "Superseded"],
               [[_e(s.get("by")), _e(s.get("role")), _e(s.get("at")),
                 f'<span class="mono">{escape(_short(s.get("report_sha256")))}</span>', _e(s.get("superseded"))]
                for s in signoffs])
        + "<p>These sign-offs approved an earlier version of this report, before fttool added to it.</p>"
        if signoffs else "<p>Sign-offs are recorded in signoff.json after the report is written "
                         "(<code>fttool signoff</code>); <code>fttool verify</code> checks them.</p>")
    return _section("policy", "Policy and sign-off", html)


def render_html(report: dict) -> str:
    run = report.get("run") or {}
    sections = (_header_html, _data_html, _pii_html, _bias_html, _augmentation_html, _training_html, _privacy_html,
                _evaluation_html, _fairness_html, _memorisation_html, _review_html, _policy_html, _stages_html, _environment_html, _lineage_html, _recipe_html)
    # The policy forbids every load and script, so the file stays self-contained even if a value slips through.
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>fttool report: {_e(run.get('name'))} {_e(run.get('id'))}</title><style>{CSS}</style></head>"
            "<body><main>\n" + "\n".join(section(report) for section in sections) + "\n</main></body></html>\n")


# -- Markdown ----------------------------------------------------------------------------------
def _cell(value) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_pii(report: dict) -> str:
    pii = report.get("pii")
    if pii is None:
        return f"**PII:** not run ({_skip_reason(report, 'pii') or MISSING})"
    found = f"**PII:** {fmt(pii.get('records_with_pii'))} of {fmt(pii.get('records_scanned'))} records had PII"
    if pii.get("action") == "drop":
        return f"{found}; found: {_counts_text(pii.get('entities'))}; records dropped: {fmt(pii.get('dropped'))}"
    return (f"{found}; replaced: {_counts_text(pii.get('entities'))}; residual after replacement: "
            f"{fmt(pii.get('residual_total'))}")


def _md_bias(report: dict) -> str:
    bias = report.get("bias")
    if bias is None:
        return f"**Bias:** not run ({_skip_reason(report, 'bias') or MISSING})"
    audits = [*(bias.get("fields") or {}).items(),
              *((f"{category} mentions", audit) for category, audit in (bias.get("mentions") or {}).items())]
    parts = []
    for name, audit in audits:
        reasons = "; ".join(str(r) for r in (audit or {}).get("reasons") or [])
        parts.append(f"{name} {fmt((audit or {}).get('status'))}" + (f" ({reasons})" if reasons else ""))
    return f"**Bias:** {fmt(bias.get('status'))}" + (" · " + " · ".join(parts) if parts else "")


def _md_training(report: dict) -> str:
    training = report.get("training")
    if training is None:
        return f"**Training:** not run ({_skip_reason(report, 'training') or MISSING})"
    trainable, total = training.get("trainable_parameters"), training.get("total_parameters")
    share = f" ({fmt_percent(trainable / total)})" if _is_number(trainable) and _is_number(total) and total else ""
    return (f"**Training:** {fmt(training.get('method'))} on `{fmt(_get(training, 'base_model', 'name'))}` · "
            f"{fmt(training.get('steps'))} steps · train loss {fmt(training.get('train_loss'))} · "
            f"validation loss {fmt(training.get('validation_loss'))} · "
            f"{fmt(trainable)} trainable parameters{share}")


def _md_privacy(report: dict) -> str:
    privacy = report.get("privacy") or {}
    if not privacy.get("enabled"):
        return "**Differential privacy:** off"
    stop = " (stopped at the budget)" if privacy.get("stopped_by_budget") else ""
    return (f"**Differential privacy:** (ε {fmt(privacy.get('epsilon'))}, δ {fmt(privacy.get('delta'))}) per "
            f"{_privacy_unit(privacy)} · {fmt(privacy.get('accountant')).upper()} · noise "
            f"{fmt(privacy.get('noise_multiplier'))} · "
            f"{fmt(privacy.get('steps'))}/{fmt(privacy.get('planned_steps'))} steps{stop}"
            + "".join(f" · ⚠ {warning}" for warning in privacy.get("warnings") or []))


def _md_evaluation(report: dict) -> list[str]:
    evaluation = report.get("evaluation")
    if evaluation is None:
        return [f"- **Evaluation:** not run ({_skip_reason(report, 'evaluation') or MISSING})"]
    base, tuned, delta = (evaluation.get(side) or {} for side in ("base", "tuned", "delta"))
    lines = []
    primary = evaluation.get("primary_metric")
    if primary:
        lines.append(f"- **Primary metric:** {fmt(primary.get('name'))} "
                     f"{'improved' if primary.get('improved') else 'did NOT improve'} "
                     f"({fmt(primary.get('base'))} → {fmt(primary.get('tuned'))}, "
                     f"{fmt_signed(primary.get('delta'))})")
    forgetting = evaluation.get("forgetting")
    if forgetting:
        lines.append(f"- **Forgetting:** {fmt(forgetting.get('status'))} · general-text perplexity "
                     f"{fmt(forgetting.get('base_perplexity'))} → {fmt(forgetting.get('tuned_perplexity'))} "
                     f"({fmt_percent(forgetting.get('increase'))}, "
                     f"limit {fmt_percent(forgetting.get('max_increase'))})")
    fairness = report.get("fairness") or {}
    if fairness.get("evaluated"):
        gaps = [f"{field} {metric} gap {fmt(gap)}" for field, by_metric in (fairness.get("gaps") or {}).items()
                for metric, gap in by_metric.items()]
        lines.append(f"- **Fairness:** {fmt(fairness.get('status'))}" + (" · " + " · ".join(gaps) if gaps else ""))
    elif fairness:
        lines.append(f"- **Fairness:** not evaluated ({fmt(fairness.get('reason'))})")
    lines += ["", f"**Evaluation** on {fmt(evaluation.get('samples'))} test records:", "",
              "| metric | base | tuned | change |", "|---|---:|---:|---:|"]
    lines += [f"| {_cell(name)} | {fmt(base.get(name))} | {fmt(tuned.get(name))} | {fmt_signed(delta.get(name))} |"
              for name in _metric_names(evaluation)]
    return lines


def _md_memorisation(report: dict) -> str:
    memorisation = report.get("memorisation")
    if memorisation is None:
        return f"**Memorisation:** not run ({_skip_reason(report, 'memorisation') or MISSING})"
    return (f"**Memorisation:** {fmt(memorisation.get('status'))} · most exposed canary "
            f"{fmt(memorisation.get('max_exposure_bits'))} bits (limit {fmt(memorisation.get('limit_bits'))}) · mean "
            f"{fmt(memorisation.get('mean_exposure_bits'))} · never-planted controls mean "
            f"{fmt(_get(memorisation, 'controls', 'mean_exposure_bits'))}")


def _md_review_and_policy(report: dict) -> str:
    review, policy = report.get("review"), report.get("policy") or {}
    text = ("**Human review:** none imported" if review is None else
            f"**Human review:** {fmt(review.get('rated'))} of {fmt(review.get('predictions'))} rated · mean base "
            f"{fmt(_get(review, 'mean_rating', 'base'))}, tuned {fmt(_get(review, 'mean_rating', 'tuned'))} · "
            f"preferred: {_counts_text(review.get('preference'))}")
    if policy.get("evaluated"):
        failed = [str(rule.get("id")) for rule in policy.get("rules") or [] if rule.get("status") == "failed"]
        text += (f" · **Policy {fmt(policy.get('policy'))}:** " + ("pass" if policy.get("passed") else "fail")
                 + (f" ({', '.join(failed)})" if failed else ""))
    else:
        text += " · **Policy:** not evaluated"
    return text


def evaluation_outcome(report: dict) -> str | None:
    """One line for the terminal: the evaluation's gated results, which policies turn into pass or fail."""
    evaluation = report.get("evaluation")
    if evaluation is None:
        return None
    parts = []
    primary = evaluation.get("primary_metric")
    if primary:
        verdict = "improved" if primary.get("improved") else "did NOT improve"
        parts.append(f"primary metric {primary.get('name')} {verdict}")
    if evaluation.get("forgetting"):
        parts.append(f"forgetting {evaluation['forgetting'].get('status')}")
    fairness = report.get("fairness") or {}
    parts.append(f"fairness {fairness.get('status')}" if fairness.get("evaluated") else "fairness not evaluated")
    return "evaluation: " + ", ".join(parts) + " (gate with fttool check --policy)"


def _md_leakage(leakage: dict | None) -> str:
    if not leakage:
        return ""
    return (f" · leakage: {leakage['exact_pairs']} exact, {leakage['near_pairs']} near pairs, "
            f"{leakage['moved']} moved to train")


def _split_details(split: dict | None) -> str:
    """Stratification, group-aware assignment and the cross-split leakage check."""
    if not split:
        return ""
    html = ""
    stratify, group_by, leakage = split.get("stratify"), split.get("group_by"), split.get("leakage")
    if stratify:
        rows = [[_e(name), *(_e(counts.get(s)) for s in SPLITS)] for name, counts in stratify["strata"].items()]
        html += (f"<p>Stratified by <code>{_e(stratify['field'])}</code>; records without it: "
                 f"{_e(stratify['missing'])}.</p>" + _table(["Stratum", *SPLITS], rows, numeric={1, 2, 3}))
    if group_by:
        html += (f"<p>Group-aware split by <code>{_e(group_by['field'])}</code>: no group is on two sides. Groups "
                 "per split: " + ", ".join(f"{s} {_e(group_by['groups'].get(s))}" for s in SPLITS)
                 + f"; records without the field: {_e(group_by['missing'])}.</p>")
    if leakage:
        html += (f"<p>Leakage check across splits: {_e(leakage['exact_pairs'])} exact and "
                 f"{_e(leakage['near_pairs'])} near-duplicate pairs; action <code>{_e(leakage['action'])}</code>, "
                 f"{_e(leakage['moved'])} records moved to train"
                 + (f" (e.g. {', '.join(_e(i) for i in leakage['example_ids'])})" if leakage["example_ids"] else "")
                 + ".</p>")
    for note in split.get("notes") or []:
        html += f"<p>Note: {_e(note)}</p>"
    return html


def render_markdown(report: dict) -> str:
    run = report.get("run") or {}
    counts = _get(report, "data", "counts") or {}
    splits = _get(report, "data", "splits") or {}
    lines = [f"### fttool audit report: {fmt(run.get('name'))}", "",
             f"**Status: {fmt(run.get('status'))}** · run `{fmt(run.get('id'))}` · "
             f"started {fmt(run.get('started_at'))} · finished {fmt(run.get('finished_at'))} · "
             f"recipe `{_short(_get(report, 'recipe', 'fingerprint'))}`"]
    demo = _demo_model(report)
    if demo:
        lines += ["", f"> **Demo base model ({demo}):** the numbers show the pipeline works, not model quality."]
    # A bullet list, because consecutive lines would merge into one paragraph in a PR comment.
    lines += ["",
              "- **Records:** " + " → ".join(f"{label.lower()} {fmt(counts.get(key))}"
                                            for key, label in FLOW_STEPS if key != "augmented")
              + f"; augmented {fmt_signed(counts.get('augmented'))}",
              "- **Final splits:** " + " · ".join(f"{name} {fmt(splits.get(name))}" for name in SPLITS)
              + _md_leakage(_get(report, "data", "split", "leakage")),
              "- " + _md_pii(report), "- " + _md_bias(report), "- " + _md_training(report), "- " + _md_privacy(report),
              *_md_evaluation(report), "", "- " + _md_memorisation(report), "- " + _md_review_and_policy(report), "",
              "| stage | status | seconds | records in → out |", "|---|---|---:|---|"]
    lines += [f"| {_cell(fmt(stage.get('name')))} | {fmt(stage.get('status'))} | {fmt(stage.get('seconds'))} | "
              f"{fmt(stage.get('records_in'))} → {fmt(stage.get('records_out'))} |"
              for stage in report.get("stages") or []]
    skipped = report.get("skipped_stages") or []
    if skipped:
        lines += ["", "**Skipped:** " + "; ".join(f"{fmt(s.get('name'))} ({fmt(s.get('reason'))})" for s in skipped)]
    lines += ["", "Full details: report.html (lineage, environment, per-field PII and bias tables)."]
    return "\n".join(lines) + "\n"
