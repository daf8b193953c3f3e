"""report.json as a self-contained HTML page for reviewers, on screen and in print.

The page shows only what the report holds: a missing value prints as an em dash, and a section
whose stage was skipped says why instead of showing zeros. It loads nothing from anywhere (inline
CSS and SVG, no scripts), so it can be archived and opened offline.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from html import escape

from fttool.data.records import SPLITS
from fttool.report.charts import exposure_chart, flow_chart, group_chart, loss_chart, similarity_chart
from fttool.report.format import (
    MISSING,
    counts_text,
    fmt,
    fmt_percent,
    fmt_signed,
    get,
    is_number,
    launch_text,
    processes_text,
    short_digest,
)
from fttool.report.format import html_value as _e
from fttool.report.sections import (
    FLOW_STEPS,
    demo_model,
    metric_names,
    policy_waiver_text,
    preference_unit,
    privacy_unit,
    signature_text,
    skip_reason,
)
from fttool.report.verdict import verdict

METRIC_DIRECTION = {"validation_loss": "lower is better", "test_loss": "lower is better",
                    "perplexity": "lower is better", "rougeL": "higher is better"}
BADGE_TONES = {"succeeded": "good", "pass": "good", "ran": "good", "cached": "info", "resumed": "info",
               "warn": "warn", "inconclusive": "warn", "failed": "bad", "fail": "bad"}
PII_ACTIONS = {"scrub": "scrub: each finding anonymised by its operator",
               "drop": "drop: records with any finding removed"}
MAX_EXAMPLE_ROWS = 10
RULE_BADGES = {"passed": "pass", "failed": "fail", "waived": "warn"}

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
.nowrap{white-space:nowrap}
.skipped{color:#5b6470;font-style:italic}nav{margin:10px 0 0;font-size:.92em}nav a{margin-right:12px;color:#1c4f94}
.share{display:inline-block;height:10px;background:#5b7fb5;vertical-align:middle;margin-right:6px}
svg.chart{display:block;margin:8px 0 16px;font-size:12px;max-width:100%;height:auto}svg.chart text{fill:#1d2330}
svg.chart .axis{stroke:#6b7480}svg.chart .grid{stroke:#e3e6ea}svg.chart .line{fill:none;stroke:#1c4f94;stroke-width:2}
.bar-input{fill:#5b7fb5}.bar-quarantined{fill:#c0504d}.bar-duplicates{fill:#d49a3a}.bar-dropped_by_policy{fill:#8e5ea2}
.bar-kept{fill:#3f9457}.bar-augmented{fill:#6bb7c4}
.bar-base{fill:#a9b4c4}.bar-tuned{fill:#1c4f94}svg.chart .ci{stroke:#1d2330;stroke-width:1.5}
pre{background:#f3f5f8;padding:10px;overflow:auto;font-size:.85em;max-height:480px}
.verdict{padding:10px 16px;margin:10px 0 14px;border-radius:6px;border:2px solid}
.verdict ul{margin:6px 0 0;padding-left:20px}
.verdict-pass{border-color:#3f9457;background:#eef8f1}.verdict-warn{border-color:#d08a00;background:#fff5e0}
.verdict-fail{border-color:#c0504d;background:#fcebeb}.verdict a{color:inherit}
.digest .full{display:none}
table.lineage{width:100%;table-layout:fixed}td.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:.85em;overflow-wrap:anywhere}.c-path,.c-parents{width:30%}.c-kind,.c-stage{width:10%}
.c-sha{width:20%}tr.group>td{background:#f7f8fa}tr.group table{margin:8px 0 4px}summary{cursor:pointer}
@media print{
@page{size:A4;margin:14mm 12mm}
body{background:#fff;font-size:10.5pt;-webkit-print-color-adjust:exact;print-color-adjust:exact}
main{max-width:none;padding:0}nav{display:none}a{color:inherit;text-decoration:none}
.digest .short{display:none}.digest .full{display:inline;overflow-wrap:anywhere;font-size:7.5pt}
details::details-content{content-visibility:visible;display:block}summary{list-style:none}
pre{max-height:none;overflow:visible;white-space:pre-wrap;overflow-wrap:anywhere;font-size:8pt}
table{font-size:8.5pt;max-width:100%}td,th{padding:3px 6px}svg.chart{max-width:100%;height:auto}
h2,h3{break-after:avoid}tr,svg,.banner,.verdict{break-inside:avoid}
}
"""




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
        return f"<p>{escape(first_header)}: {escape(counts_text(counts))}</p>"
    return _table([first_header, second_header], [[escape(str(k)), _e(v)] for k, v in counts.items()], numeric={1})


def _digest(value) -> str:
    """A sha256: its first characters on screen (all of it on hover), all of it in print."""
    if not isinstance(value, str):
        return MISSING
    return (f'<span class="mono digest" title="{escape(value)}"><span class="short">{escape(short_digest(value))}'
            f'</span><span class="full">{escape(value)}</span></span>')


def _not_run(report: dict, section: str) -> str:
    reason = skip_reason(report, section)
    text = f"Not run: {reason}." if reason else "No results in this report."
    return f'<p class="skipped">{escape(text)}</p>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _verdict_html(report: dict) -> str:
    """The overall verdict first, each reason linked to the section that holds its evidence."""
    result = verdict(report)
    if not result.reasons:
        items = "<li>Nothing to flag: no policy rule failed, no check warned, no record was quarantined.</li>"
    else:
        items = "".join(f'<li>{_badge(reason.status)} <a href="#{escape(reason.section)}">{escape(reason.text)}'
                        "</a></li>" for reason in result.reasons)
    return (f'<div class="verdict verdict-{escape(result.status)}" id="verdict"><strong>Verdict: '
            f"{escape(result.status.upper())}</strong> (pass, warn or fail, from this report alone)<ul>{items}</ul>"
            "</div>")


def _header_html(report: dict) -> str:
    run = report.get("run") or {}
    recipe = report.get("recipe") or {}
    rows = [("Run id", f'<span class="mono">{_e(run.get("id"))}</span>'), ("Stages", _badge(run.get("status"))),
            ("Started", _e(run.get("started_at"))), ("Finished", _e(run.get("finished_at"))),
            ("Resumed", _e(run.get("resumed_at"))), ("Recipe", _e(recipe.get("path"))),
            ("Recipe fingerprint", f'<span class="mono">{_e(recipe.get("fingerprint"))}</span>'),
            ("fttool version", _e(run.get("fttool_version"))),
            ("Report schema version", _e(report.get("schema_version")))]
    html = f"<header><h1>Fine-tuning audit report: {_e(run.get('name'))}</h1>{_verdict_html(report)}{_kv_table(rows)}"
    demo = demo_model(report)
    if demo:
        note = get(report, "training", "base_model", "note")
        html += (f'<div class="banner" role="alert"><strong>Demo base model: {escape(demo)}.</strong> '
                 "This run used the small offline demo model that fttool builds, not a production model; its "
                 "losses and scores show that the pipeline works and say nothing about model quality."
                 + (f" (The training stage's note on it: {escape(str(note).rstrip('.'))}.)" if note else "")
                 + "</div>")
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
              "to the training split on top of the kept records."
            + (f" Each record is one {preference_unit(report)}.</p>" if preference_unit(report) else "</p>")
            + flow_chart(counts))

    split = data.get("split")
    assigned = get(split, "counts") or {}
    ratios = get(split, "ratios") or {}
    final = data.get("splits") or {}
    html += ("<h3>Splits</h3>"
             + _table(["Split", "Ratio", "Assigned by split stage", "In final file"],
                      [[name, _e(ratios.get(name)), _e(assigned.get(name)), _e(final.get(name))] for name in SPLITS],
                      numeric={1, 2, 3})
             + f"<p>Split seed: {_e(get(split, 'seed'))}. Final files include augmented records and exclude "
               "records dropped by policy."
             + (f" The train file also holds {_e(counts['canaries'])} memorisation canary records (see Memorisation)."
                if counts.get("canaries") else "") + "</p>"
             + _split_details(split))

    ingest = data.get("ingest")
    html += "<h3>Ingest and quarantine</h3>"
    if ingest is None:
        html += _not_run(report, "data.ingest")
    else:
        source_rows = [[_e(s.get("path")), _e(s.get("tag")), _e(s.get("container")), _e(s.get("format")),
                        _e(s.get("lines")), _e(s.get("kept")), _e(s.get("quarantined"))]
                       for s in ingest.get("sources") or []]
        html += (_table(["Source", "Tag", "Container", "Format", "Records", "Kept", "Quarantined"], source_rows,
                        numeric={4, 5, 6})
                 + _meta_fields(ingest.get("sources") or [])
                 + _count_table("Quarantine reason", ingest.get("quarantined_by_reason"))
                 + f"<p>Blank lines skipped: {_e(ingest.get('blank_lines'))}. Quarantined records are kept "
                   "in quarantine.jsonl with their reason.</p>")

    dedup = data.get("dedup")
    html += "<h3>Deduplication and normalisation</h3>"
    if dedup is None:
        html += _not_run(report, "data.dedup")
    else:
        rule_rows = []
        for rule, outcome in (dedup.get("rules") or {}).items():
            examples = (outcome or {}).get("example_ids") or []
            rule_rows.append([escape(rule), _e((outcome or {}).get("removed")),
                              f'<span class="mono">{_e(examples)}</span>'])
        html += (_table(["Rule", "Removed", "Example ids"], rule_rows, numeric={1})
                 + _count_table("Normalisation", dedup.get("normalised"), "Records changed"))
    return _section("data", "Data", html)


def _meta_fields(sources: list) -> str:
    """The keys of each source outside its format: kept as meta, which training never reads."""
    paragraphs = []
    for source in sources:
        fields = source.get("meta_fields") or {}
        if fields:
            named = ", ".join(f"{_e(name)} ({fmt(count)} record{'' if count == 1 else 's'})"
                              for name, count in fields.items())
            paragraphs.append(f"<p>Fields outside the {_e(source.get('format'))} format, kept as metadata (for bias "
                              f"fields, the split and evaluation groups) and never trained on: "
                              f"{_e(source.get('path') or source.get('hub'))}: {named}.</p>")
    return "".join(paragraphs)


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


def _ner_html(ner) -> str:
    """The PII stage's NER engine (pii.ner): spaCy's model, or a transformers model by the sha256 of its files."""
    if not isinstance(ner, dict):
        return MISSING  # a report from before pii.ner
    if ner.get("engine") != "transformers":
        return f"spaCy ({_e(ner.get('model'))})"
    labels = ", ".join(f"{label} → {entity}" for label, entity in (ner.get("labels") or {}).items())
    ignored = ner.get("ignored_labels") or []
    return (f'transformers model <span class="mono">{_e(ner.get("model"))}</span>'
            + (f" at revision {_e(ner.get('revision'))}" if ner.get("revision") else "")
            + f", sha256 {_digest(ner.get('sha256'))}; labels {escape(labels) or MISSING}"
            + (f"; ignored labels {_e(ignored)}" if ignored else ""))


def _pii_html(report: dict) -> str:
    pii = report.get("pii")
    if pii is None:
        return _section("pii", "PII", _not_run(report, "pii"))
    drops = pii.get("action") == "drop"
    residual_total = pii.get("residual_total")
    residual_badge = (_badge("pass") + " none found" if residual_total == 0
                      else _badge("fail") + f" {_e(residual_total)} remaining" if is_number(residual_total)
                      else MISSING)
    rows = [("Records scanned", _e(pii.get("records_scanned"))),
            ("Records with PII", _e(pii.get("records_with_pii"))),
            ("Action", escape(PII_ACTIONS.get(pii.get("action"), MISSING))),
            ("Entity types checked", _e(pii.get("entities_checked"))),
            ("Recipe recognizers", _e(pii.get("custom_recognizers"))),
            ("NLP model", _e(pii.get("nlp_model"))), ("Named entities found by", _ner_html(pii.get("ner"))),
            ("Score threshold", _e(pii.get("score_threshold")))]
    if drops:
        example_ids = pii.get("dropped_example_ids") or []
        rows.append(("Records dropped", _e(pii.get("dropped")) + (
            f' (e.g. <span class="mono">{_e(example_ids)}</span>)' if example_ids else "")))
    else:
        rows += [("Residual PII after scrubbing", residual_badge),
                 ("Strict (a residual stops the run at the PII stage)", _e(pii.get("strict")))]
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
        bar = f'<span class="share" style="width:{share * 120:.0f}px"></span>' if is_number(share) else ""
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
        # Groups too small to name without identifying people are listed under labels; the note says so.
        note = (audit or {}).get("note")
        html += _bias_audit_html(field, audit or {}, f"<p>{escape(note)}</p>" if note else "")
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


def _augmentation_html(report: dict) -> str:
    augmentation = report.get("augmentation")
    if augmentation is None:
        return _section("augmentation", "Augmentation", _not_run(report, "augmentation"))
    methods = {method: stats or {} for method, stats in (augmentation.get("methods") or {}).items()}
    rows = [[escape(method), _e(stats.get("generated")), _e(stats.get("kept")),
             escape(counts_text(stats.get("rejected")))] for method, stats in methods.items()]
    html = _table(["Method", "Generated", "Kept", "Rejected by reason"], rows, numeric={1, 2})
    html += (f"<p>Meaning check: {_e(augmentation.get('similarity_model'))} · PII re-scan: "
             f"{_e(get(augmentation, 'pii_scan', 'nlp_model'))}, score threshold "
             f"{_e(get(augmentation, 'pii_scan', 'score_threshold'))}</p>"
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
                 + "".join(f"<p>{escape(method)}</p>" + similarity_chart(method, dist.get("histogram"))
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
    if is_number(trainable) and is_number(total) and total:
        cell += f" ({fmt_percent(trainable / total)})"
    return escape(cell)


def _validation_history(report: dict) -> tuple[list, bool]:
    """The validation losses logged in training, from step 0 (the base model) when the evaluation measured it."""
    history = list(get(report, "training", "validation_loss_history") or [])
    base = get(report, "evaluation", "base", "validation_loss")
    if not is_number(base) or any(isinstance(p, dict) and p.get("step") == 0 for p in history):
        return history, False
    return [{"step": 0, "loss": base}, *history], True


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
    if "records_beyond_max_samples" in training:
        cap = get(report, "recipe", "resolved", "train", "max_samples")
        rows.append(("Train records left out", _e(training["records_beyond_max_samples"])
                     + f" (train.max_samples: {_e(cap)})"))
    launch, tracking = training.get("launch") or {}, training.get("tracking") or {}
    if launch:
        rows.append(("Processes", escape(launch_text(launch))))
    rows.append(("Ranks" if launch else "Processes", escape(processes_text(training))))
    if tracking:
        rows.append(("Tracked in MLflow", f'<span class="mono">{_e(tracking.get("uri"))}</span>, experiment '
                                          f'<span class="mono">{_e(tracking.get("experiment_id"))}</span>, run '
                                          f'<span class="mono">{_e(tracking.get("run_id"))}</span>'))
    html = _kv_table(rows)
    if training.get("loss_history"):
        html += "<h3>Training loss</h3>" + loss_chart(training["loss_history"])
    if training.get("validation_loss_history"):
        history, from_base = _validation_history(report)
        html += ("<h3>Validation loss</h3>" + loss_chart(history, "Validation loss")
                 + ("<p>Step 0 is the base model: its validation loss as the evaluate stage measured it.</p>"
                    if from_base else ""))
    return _section("training", "Training", html)


def _preference_html(report: dict) -> str:
    """Preference tuning: the objective and its TRL settings, the train pairs, and the reward curves."""
    preference = get(report, "training", "preference")
    if not preference:
        return ""
    settings, pairs = preference.get("settings") or {}, preference.get("train_pairs") or {}
    rows = [("Objective", _e(preference.get("objective"))), ("beta", _e(settings.get("beta"))),
            ("Loss type", _e(settings.get("loss_type"))), ("Reference model", _e(preference.get("reference_model"))),
            ("Train pairs", _e(pairs.get("pairs"))), ("Unpaired (KTO) responses", _e(pairs.get("unpaired"))),
            ("Distinct prompts", _e(pairs.get("prompts")))]
    for side in ("chosen", "rejected"):
        lengths = pairs.get(f"{side}_chars") or {}
        rows.append((f"{side.capitalize()} length (characters)", escape(
            f"mean {fmt(lengths.get('mean'))}, median {fmt(lengths.get('median'))}, max {fmt(lengths.get('max'))}")))
    rows += [("Chosen longer than rejected", escape(fmt_percent(pairs.get("chosen_longer_share")))),
             ("Ties (equal scores)", escape(f"{fmt(pairs.get('ties'))} of {fmt(pairs.get('scored_pairs'))} scored")),
             ("Identical pairs quarantined",
              _e((get(report, "data", "ingest", "quarantined_by_reason") or {}).get("identical_pair", 0)))]
    html = _kv_table(rows)
    for split, title in (("train", "Reward margin (train)"), ("validation", "Reward margin (validation)")):
        curve = [{"step": point.get("step"), "loss": point.get("margins")}
                 for point in get(preference, "reward_curves", split) or []]
        if curve:
            html += f"<h3>{title}</h3>" + loss_chart(curve, title)
    return _section("preference", "Preference tuning", html)


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
                                 f"{privacy_unit(privacy)}")),
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
    if direction is None or not is_number(delta):
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
    for name in metric_names(evaluation):
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
    if not isinstance(interval, list) or len(interval) != 2 or not all(is_number(v) for v in interval):
        return MISSING
    return f"[{fmt(float(interval[0]))}, {fmt(float(interval[1]))}]"


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
            f"at least {_e(thresholds.get('min_group_size'))} records, by their intervals: an interval wholly above a "
            f"difference of {_e(thresholds.get('max_difference'))} or wholly below a ratio of "
            f"{_e(thresholds.get('min_ratio'))} warns"
            + (f"; wholly above {_e(thresholds['fail_above_difference'])} fails"
               if thresholds.get("fail_above_difference") is not None else "")
            + (f"; wholly below {_e(thresholds['fail_below_ratio'])} fails" if thresholds.get("fail_below_ratio")
               is not None else "")
            + "; an interval that crosses a limit is inconclusive: more test records per group would tell.</p>")
    for field, result in (fairness.get("fields") or {}).items():
        groups = result.get("groups") or {}
        html += (f"<h3>{escape(str(field))} {_badge(result.get('status'))}</h3>"
                 + "".join(f"<p>{_e(reason)}</p>" for reason in result.get("reasons") or []))
        for metric, results in (result.get("metrics") or {}).items():
            rows = []
            for group, info in groups.items():
                cells = []
                for side in ("base", "tuned"):
                    point = get(results, side, "by_group", group) or {}
                    cells += [_e(point.get("value")), escape(_interval_text(point.get("ci")))]
                rows.append([escape(str(group)), _e(info.get("count")),
                             "yes" if info.get("compared") else "no (too few records; not compared)", *cells])
            for name in ("difference", "ratio"):
                rows.append([f"<em>{name}</em>", "", "",
                             *(cell for side in ("base", "tuned")
                               for cell in (_e(get(results, side, name)),
                                            escape(_interval_text(get(results, side, name + "_ci")))))])
            html += (f"<p><strong>{escape(metric)} by {escape(str(field))}</strong></p>"
                     + _table(["Group", "Records", "Compared", "Base", "Base interval", "Tuned", "Tuned interval"],
                              rows, numeric={1, 3, 5})
                     + group_chart(f"{metric} by {field}", groups, results))
    return _section("fairness", "Fairness by group", html)


def _stages_html(report: dict) -> str:
    rows = [[escape(str(stage.get("name"))), _badge(stage.get("status")), _e(stage.get("seconds")),
             _e(stage.get("records_in")), _e(stage.get("records_out")), escape(counts_text(stage.get("removed"))),
             escape(counts_text(stage.get("added"))),
             _digest(stage.get("fingerprint"))]
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
                      ("Memory", escape(f"{memory / 2 ** 30:.1f} GiB") if is_number(memory) else MISSING),
                      ("GPUs", _e(environment.get("gpus"))),
                      ("Recipe repository commit",
                       f'<span class="mono">{_e(get(recipe_git, "commit"))}</span>'
                       + (" (uncommitted changes)" if get(recipe_git, "uncommitted_changes") else "")
                       if recipe_git else "not in a git repository")])
    packages = environment.get("packages") or {}
    html += _table(["Package", "Version"], [[escape(name), _e(version)] for name, version in packages.items()])
    return _section("environment", "Environment", html)


def _tracking_dir(report: dict) -> str | None:
    """The run-relative directory of the train stage's MLflow file store, whose many small files are grouped."""
    uri = get(report, "training", "tracking", "uri")
    if not isinstance(uri, str) or ":" in uri or uri.startswith(("/", "..")):
        return None
    return uri.rstrip("/") + "/"


def _lineage_rows(artifacts: list[dict]) -> str:
    return "".join(
        f'<tr><td class="path">{_e(a.get("path"))}</td><td>{_e(a.get("kind"))}'
        f'{", not kept" if a.get("retained") is False else ""}</td><td>{_e(a.get("stage"))}</td>'
        f'<td>{_digest(a.get("sha256"))}</td><td class="path">'
        + ("<br>".join(escape(parent) for parent in a.get("parents") or []) or MISSING) + "</td></tr>"
        for a in artifacts)


def _lineage_table(body: str) -> str:
    return ('<table class="lineage"><colgroup><col class="c-path"><col class="c-kind"><col class="c-stage">'
            '<col class="c-sha"><col class="c-parents"></colgroup><thead><tr><th>Path</th><th>Kind</th><th>Stage</th>'
            f"<th>sha256</th><th>Parents</th></tr></thead><tbody>{body}</tbody></table>")


def _lineage_html(report: dict) -> str:
    artifacts = get(report, "lineage", "artifacts") or []
    tracking = _tracking_dir(report)
    internals = [a for a in artifacts if tracking and str(a.get("path")).startswith(tracking)]
    grouped = {id(a) for a in internals}
    body = ""
    for artifact in artifacts:
        if tracking and id(artifact) in grouped:
            if artifact is internals[0]:  # the group stands where its first file would
                parents = sorted({p for a in internals for p in a.get("parents") or []})
                body += (f'<tr class="group"><td colspan="5"><details><summary><span class="mono">{escape(tracking)}'
                         f"</span>: MLflow's file store for the train stage, {len(internals)} files made from "
                         f"{escape(', '.join(parents) or MISSING)} (expand for each file)</summary>"
                         + _lineage_table(_lineage_rows(internals)) + "</details></td></tr>")
            continue
        body += _lineage_rows([artifact])
    html = ("<p>Every source and output with its sha256 (on screen, hover for the full digest; print shows it "
            "whole) and the files it was made from; not kept: an intermediate in work/, deleted when the run "
            "succeeded, its digest recorded.</p>" + _lineage_table(body))
    return _section("lineage", "Lineage", html)


def _recipe_html(report: dict) -> str:
    resolved = get(report, "recipe", "resolved")
    body = (f'<details class="recipe"><summary>Resolved recipe, defaults filled in</summary>'
            f"<pre>{escape(json.dumps(resolved, indent=2, ensure_ascii=False))}</pre></details>"
            if resolved is not None else f"<p>{MISSING}</p>")
    return _section("recipe", "Recipe", body)


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
            ("Base model, canaries", escape(f"mean {fmt(get(base, 'canaries', 'mean_exposure_bits'))}, max "
                                            f"{fmt(get(base, 'canaries', 'max_exposure_bits'))} bits")),
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
            "model ranks them among secrets it never saw. Secrets are not shown. Chart: dark bars after tuning, "
            "light bars under the base model.</p>" + _kv_table(rows)
            + exposure_chart(memorisation)
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
                             + _digest(review.get("sha256"))),
            ("Imported", _e(review.get("imported_at"))),
            ("Predictions rated", escape(f"{fmt(review.get('rated'))} of {fmt(review.get('predictions'))} "
                                         f"({fmt(review.get('unrated'))} unrated)")),
            ("Mean rating, base model", _e(means.get("base"))), ("Mean rating, tuned model", _e(means.get("tuned"))),
            ("Scale", escape(f"{fmt(scale.get('min'))} to {fmt(scale.get('max'))}"))]
    return _section("review", "Human review", _kv_table(rows) + _count_table("Preferred", review.get("preference"),
                                                                              "Outputs"))


def _rule_badge(rule: dict) -> str | None:
    """A failed rule of warning severity warns, as the verdict counts it; an error-severity one fails."""
    status = rule.get("status")
    if not isinstance(status, str):
        return None
    if status == "failed" and rule.get("severity") == "warn":
        return "warn"
    return RULE_BADGES.get(status, status)


def _policy_html(report: dict, signoffs: Sequence[dict]) -> str:
    policy = report.get("policy") or {}
    if policy.get("evaluated"):
        html = (f"<p>Policy <code>{_e(policy.get('policy'))}</code> ({_e(policy.get('path'))}, sha256 "
                f'{_digest(policy.get("sha256"))}), checked on '
                f"{_e(policy.get('checked_on'))}: {_badge('pass' if policy.get('passed') else 'fail')}</p>")
        rows = [[f'<span class="nowrap">{escape(str(rule.get("id")))}</span>', _e(rule.get("severity")),
                 _badge(_rule_badge(rule))
                 + (f"<br>{escape(policy_waiver_text(rule))}" if rule.get("status") == "waived" else ""),
                 escape(str(rule.get("description") or MISSING)),
                 "<br>".join(escape(str(f)) for f in rule.get("findings") or []) or MISSING]
                for rule in policy.get("rules") or [] if rule.get("status") != "not_applicable"]
        html += (_table(["Rule", "Severity", "Outcome", "Description", "Findings"], rows)
                 + "<p>To check the run again, from its directory: "
                 f"<code>fttool check . --policy {_e(policy.get('path'))}</code></p>")
    else:
        html = f'<p class="skipped">No policy was applied when the report was written: {_e(policy.get("how"))}</p>'
    return _section("policy", "Policy and sign-off", html + _signoff_html(report, signoffs))


def _signoff_html(report: dict, given: Sequence[dict]) -> str:
    """Sign-offs in signoff.json when the page was rendered, then those the report lists as superseded."""
    html = "<h3>Sign-off</h3>"
    if given:
        waived = any(s.get("waivers") for s in given)  # policy rules a reviewer accepted with the sign-off
        html += (_table(["By", "Role", "At", "Signature", "Approved report.json (sha256)", "Approves this report"]
                        + (["Waived rules"] if waived else []),
                        [[_e(s.get("by")), _e(s.get("role")), _e(s.get("at")), escape(signature_text(s)),
                          _digest(s.get("report_sha256")), "yes" if s.get("approves") else "no: an earlier version"]
                         + (["<br>".join(f"{_e(w.get('rule'))}: {_e(w.get('reason'))}" for w in s.get("waivers") or [])
                             or "none"] if waived else []) for s in given])
                 + "<p>From signoff.json when this page was rendered; <code>fttool verify</code> checks every "
                   "sign-off, including any given since. A fingerprint names a key, not its owner: "
                   "<code>fttool verify --allowed-signers FILE</code> says whether the key is one you allow. "
                   "An unsigned sign-off, and its waivers, is a claim by whoever could write signoff.json; "
                   "<code>fttool export</code> counts only waivers signed by an allowed key.</p>")
    signoffs = report.get("signoff")
    html += (
        _table(["By", "Role", "At", "Approved report sha256", "Superseded"],
               [[_e(s.get("by")), _e(s.get("role")), _e(s.get("at")),
                 _digest(s.get("report_sha256")), _e(s.get("superseded"))]
                for s in signoffs])
        + "<p>These sign-offs approved an earlier version of this report, before fttool added to it.</p>"
        if signoffs else "" if given else
        "<p>No sign-off yet. Sign-offs are recorded in signoff.json after the report is written "
        "(<code>fttool signoff</code>); <code>fttool verify</code> checks them.</p>")
    return html


def render_html(report: dict, signoffs: Sequence[dict] = ()) -> str:
    """The page for `report`; `signoffs` are signoff.json's entries, each with `approves` (of this report.json)."""
    run = report.get("run") or {}
    sections = (_header_html, _data_html, _pii_html, _bias_html, _augmentation_html, _training_html, _preference_html,
                _privacy_html, _evaluation_html, _fairness_html, _memorisation_html, _review_html,
                partial(_policy_html, signoffs=list(signoffs)), _stages_html, _environment_html, _lineage_html,
                _recipe_html)
    # The policy forbids every load and script, so the file stays self-contained even if a value slips through.
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>fttool report: {_e(run.get('name'))} {_e(run.get('id'))}</title><style>{CSS}</style></head>"
            "<body><main>\n" + "\n".join(section(report) for section in sections) + "\n</main></body></html>\n")
