"""The report's charts as inline SVG: record flow, loss curves, similarity histograms, per-group bars, canary exposure.

Each function returns an `<svg>` element (or an empty string when there is nothing to draw) with a
title for screen readers; colours come from the page's CSS classes.
"""
from __future__ import annotations

from html import escape

from fttool.report.format import fmt, get, is_number
from fttool.report.format import html_value as _e
from fttool.report.sections import FLOW_STEPS


def flow_chart(counts: dict) -> str:
    values = [(key, label, counts.get(key)) for key, label in FLOW_STEPS]
    known = [value for _, _, value in values if is_number(value)]
    if not known:
        return ""
    scale = max(known) or 1
    label_width, bar_space, row_height = 150, 440, 28
    width, height = label_width + bar_space + 90, row_height * len(values) + 8
    parts = [f'<svg class="chart" role="img" aria-label="Record flow" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>Record flow</title>']
    for index, (key, label, value) in enumerate(values):
        top = 4 + index * row_height
        length = bar_space * value / scale if is_number(value) else 0
        parts.append(f'<text x="{label_width - 8}" y="{top + 18}" text-anchor="end">{escape(label)}</text>'
                     f'<rect class="bar-{key}" x="{label_width}" y="{top + 5}" width="{length:.1f}" '
                     f'height="{row_height - 10}"/>'
                     f'<text x="{label_width + length + 6:.1f}" y="{top + 18}">{_e(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def loss_chart(history, title: str = "Training loss") -> str:
    points = sorted((point["step"], point["loss"]) for point in history or []
                    if isinstance(point, dict) and is_number(point.get("step")) and is_number(point.get("loss")))
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


def similarity_chart(method: str, histogram) -> str:
    """Bars of a method's candidate similarities, one per bin of the report's histogram."""
    counts, edges = (histogram or {}).get("counts") or [], (histogram or {}).get("edges") or []
    if len(edges) != len(counts) + 1 or not counts or not all(is_number(v) for v in [*counts, *edges]):
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


def group_chart(title: str, groups: dict, results: dict) -> str:
    """Base and tuned bars per group on a 0-1 scale, with confidence-interval whiskers; each group is labelled
    with its record count, and groups left out of the comparison say so."""
    labels = {group: f"{group} ({fmt((info or {}).get('count'))}"
                     f"{'' if (info or {}).get('compared') else ', not compared'})" for group, info in groups.items()}
    # Room for the longest label at up to 7px a character (12px text), so none runs off the left edge.
    label_width = max(220, 7 * max((len(label) for label in labels.values()), default=0) + 8)
    bar_space, bar_height, row_height = 420, 10, 32
    width, height = label_width + bar_space + 60, row_height * len(groups) + 30
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>']

    def x(value):
        return label_width + bar_space * min(max(value, 0.0), 1.0)

    for index, (group, label) in enumerate(labels.items()):
        top = 4 + index * row_height
        parts.append(f'<text x="{label_width - 8}" y="{top + 17}" text-anchor="end">{escape(label)}</text>')
        for offset, side in ((3, "base"), (3 + bar_height + 2, "tuned")):
            point = get(results, side, "by_group", group) or {}
            value, interval = point.get("value"), point.get("ci")
            if not is_number(value):
                continue
            parts.append(f'<rect class="bar-{side}" x="{label_width}" y="{top + offset}" '
                         f'width="{x(value) - label_width:.1f}" height="{bar_height}"/>')
            if isinstance(interval, list) and len(interval) == 2 and all(is_number(v) for v in interval):
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


def exposure_chart(memorisation: dict) -> str:
    """Each canary's exposure after tuning (dark) and under the base model (light), with the limit as a line."""
    canaries = [c for c in memorisation.get("canaries") or [] if is_number(c.get("exposure_bits"))]
    top_bits = memorisation.get("max_measurable_bits")
    if not canaries or not is_number(top_bits) or top_bits <= 0:
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
                     f'</text><rect class="bar-tuned" x="{label_width}" y="{top + 2}" '
                     f'width="{x(tuned) - label_width:.1f}" height="{bar_height}"/>'
                     f'<text x="{x(tuned) + 5:.1f}" y="{top + 10}">{_e(float(tuned))}</text>')
        if is_number(base):
            parts.append(f'<rect class="bar-base" x="{label_width}" y="{top + 2 + bar_height}" '
                         f'width="{x(base) - label_width:.1f}" height="{bar_height}"/>')
    limit = memorisation.get("limit_bits")
    bottom = row_height * len(canaries) + 4
    if is_number(limit):
        parts.append(f'<line class="axis" x1="{x(limit):.1f}" x2="{x(limit):.1f}" y1="0" y2="{bottom}" '
                     f'stroke-dasharray="4 3"/><text x="{x(limit):.1f}" y="{bottom + 14}" text-anchor="middle">'
                     f'limit {_e(float(limit))}</text>')
    parts.append(f'<text x="{label_width}" y="{bottom + 28}">0</text><text x="{label_width + bar_space}" '
                 f'y="{bottom + 28}" text-anchor="end">{_e(float(top_bits))} bits (most measurable)</text></svg>')
    return "".join(parts)
