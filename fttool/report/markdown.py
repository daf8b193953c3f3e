"""report.json as a short Markdown summary for a pull-request comment, and the terminal's evaluation line."""
from __future__ import annotations

from collections.abc import Sequence

from fttool.data.records import SPLITS
from fttool.report.format import (
    MISSING,
    counts_text,
    fmt,
    fmt_percent,
    fmt_signed,
    get,
    is_number,
    launch_text,
    md_cell,
    processes_text,
    short_digest,
)
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


def _md_pii(report: dict) -> str:
    pii = report.get("pii")
    if pii is None:
        return f"**PII:** not run ({skip_reason(report, 'pii') or MISSING})"
    found = f"**PII:** {fmt(pii.get('records_with_pii'))} of {fmt(pii.get('records_scanned'))} records had PII"
    ner = pii.get("ner") or {}
    if ner.get("engine") == "transformers":  # spaCy's NER, the default, goes unsaid here (report.html names it)
        found += f" (NER: `{md_cell(ner.get('model'))}`, sha256 `{short_digest(ner.get('sha256'))}`)"
    if pii.get("action") == "drop":
        return f"{found}; found: {counts_text(pii.get('entities'))}; records dropped: {fmt(pii.get('dropped'))}"
    return (f"{found}; replaced: {counts_text(pii.get('entities'))}; residual after replacement: "
            f"{fmt(pii.get('residual_total'))}")


def _md_bias(report: dict) -> str:
    bias = report.get("bias")
    if bias is None:
        return f"**Bias:** not run ({skip_reason(report, 'bias') or MISSING})"
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
        return f"**Training:** not run ({skip_reason(report, 'training') or MISSING})"
    trainable, total = training.get("trainable_parameters"), training.get("total_parameters")
    share = f" ({fmt_percent(trainable / total)})" if is_number(trainable) and is_number(total) and total else ""
    return (f"**Training:** {fmt(training.get('method'))} on `{fmt(get(training, 'base_model', 'name'))}` · "
            f"{fmt(training.get('steps'))} steps · train loss {fmt(training.get('train_loss'))} · "
            f"validation loss {fmt(training.get('validation_loss'))} · "
            f"{fmt(trainable)} trainable parameters{share} · {_md_processes(training)}")


def _md_processes(training: dict) -> str:
    """The processes that trained, as the page's Processes and Ranks rows give them."""
    launch = training.get("launch")
    if not isinstance(launch, dict):
        return f"processes: {processes_text(training)}"
    return f"processes: {launch_text(launch)}, ranks: {processes_text(training)}"


def _md_preference(report: dict) -> list[str]:
    """A bullet on preference tuning, when the run tuned on preferences."""
    preference = get(report, "training", "preference")
    if not preference:
        return []
    pairs = preference.get("train_pairs") or {}
    identical = (get(report, "data", "ingest", "quarantined_by_reason") or {}).get("identical_pair", 0)
    return [f"- **Preference tuning:** {fmt(preference.get('objective'))}, beta "
            f"{fmt(get(preference, 'settings', 'beta'))} · {fmt(pairs.get('pairs'))} train pairs over "
            f"{fmt(pairs.get('prompts'))} prompts · chosen {fmt(get(pairs, 'chosen_chars', 'mean'))} / rejected "
            f"{fmt(get(pairs, 'rejected_chars', 'mean'))} characters on average · {fmt(identical)} identical pairs "
            "quarantined"]


def _md_privacy(report: dict) -> str:
    privacy = report.get("privacy") or {}
    if not privacy.get("enabled"):
        return "**Differential privacy:** off"
    stop = " (stopped at the budget)" if privacy.get("stopped_by_budget") else ""
    return (f"**Differential privacy:** (ε {fmt(privacy.get('epsilon'))}, δ {fmt(privacy.get('delta'))}) per "
            f"{privacy_unit(privacy)} · {fmt(privacy.get('accountant')).upper()} · noise "
            f"{fmt(privacy.get('noise_multiplier'))} · "
            f"{fmt(privacy.get('steps'))}/{fmt(privacy.get('planned_steps'))} steps{stop}"
            + "".join(f" · ⚠ {warning}" for warning in privacy.get("warnings") or []))


def _md_evaluation(report: dict) -> list[str]:
    evaluation = report.get("evaluation")
    if evaluation is None:
        return [f"- **Evaluation:** not run ({skip_reason(report, 'evaluation') or MISSING})"]
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
    lines += [f"| {md_cell(name)} | {fmt(base.get(name))} | {fmt(tuned.get(name))} | {fmt_signed(delta.get(name))} |"
              for name in metric_names(evaluation)]
    return lines


def _md_memorisation(report: dict) -> str:
    memorisation = report.get("memorisation")
    if memorisation is None:
        return f"**Memorisation:** not run ({skip_reason(report, 'memorisation') or MISSING})"
    return (f"**Memorisation:** {fmt(memorisation.get('status'))} · most exposed canary "
            f"{fmt(memorisation.get('max_exposure_bits'))} bits (limit {fmt(memorisation.get('limit_bits'))}) · mean "
            f"{fmt(memorisation.get('mean_exposure_bits'))} · never-planted controls mean "
            f"{fmt(get(memorisation, 'controls', 'mean_exposure_bits'))}")


def _md_review_and_policy(report: dict) -> str:
    review, policy = report.get("review"), report.get("policy") or {}
    text = ("**Human review:** none imported" if review is None else
            f"**Human review:** {fmt(review.get('rated'))} of {fmt(review.get('predictions'))} rated · mean base "
            f"{fmt(get(review, 'mean_rating', 'base'))}, tuned {fmt(get(review, 'mean_rating', 'tuned'))} · "
            f"preferred: {counts_text(review.get('preference'))}")
    if policy.get("evaluated"):
        rules = policy.get("rules") or []
        failed = [str(rule.get("id")) for rule in rules if rule.get("status") == "failed"]
        waived = [f"{fmt(rule.get('id'))} {policy_waiver_text(rule)}" for rule in rules
                  if rule.get("status") == "waived"]
        text += (f" · **Policy {fmt(policy.get('policy'))}:** " + ("pass" if policy.get("passed") else "fail")
                 + (f" ({', '.join(failed)})" if failed else "") + "".join(f"; {note}" for note in waived))
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


def _md_verdict(report: dict) -> list[str]:
    """The overall verdict, each reason linked to its section of report.html (the Markdown has no sections)."""
    result = verdict(report)
    lines = ["", f"**Verdict: {result.status.upper()}**" + ("" if result.reasons else ": nothing to flag")]
    lines += [f"- {reason.status}: [{md_cell(reason.text)}](report.html#{reason.section})" for reason in result.reasons]
    return lines


def _md_signoffs(signoffs: Sequence[dict]) -> str:
    if not signoffs:
        return "**Sign-off:** none yet (`fttool signoff`)"
    return "**Sign-off:** " + "; ".join(
        f"{fmt(s.get('by'))} ({fmt(s.get('role'))}) at {fmt(s.get('at'))}, {signature_text(s)}"
        + ("" if s.get("approves") else ", of an earlier version of this report")
        + "".join(f", waiving {fmt(w.get('rule'))}: {fmt(w.get('reason'))}" for w in s.get("waivers") or [])
        for s in signoffs)


def render_markdown(report: dict, signoffs: Sequence[dict] = ()) -> str:
    """The summary for `report`; `signoffs` are signoff.json's entries, each with `approves` (of this report.json)."""
    run = report.get("run") or {}
    counts = get(report, "data", "counts") or {}
    splits = get(report, "data", "splits") or {}
    lines = [f"### fttool audit report: {fmt(run.get('name'))}", "",
             f"Stages: {fmt(run.get('status'))} · run `{fmt(run.get('id'))}` · "
             f"started {fmt(run.get('started_at'))} · finished {fmt(run.get('finished_at'))} · "
             f"recipe `{short_digest(get(report, 'recipe', 'fingerprint'))}`"]
    lines += _md_verdict(report)
    demo = demo_model(report)
    if demo:
        lines += ["", f"> **Demo base model ({demo}):** the numbers show the pipeline works, not model quality."]
    # A bullet list, because consecutive lines would merge into one paragraph in a PR comment.
    unit = preference_unit(report)
    lines += ["",
              f"- **Records{f' ({unit}s)' if unit else ''}:** " + " → ".join(f"{label.lower()} {fmt(counts.get(key))}"
                                                                            for key, label in FLOW_STEPS
                                                                            if key != "augmented")
              + f"; augmented {fmt_signed(counts.get('augmented'))}",
              "- **Final splits:** " + " · ".join(f"{name} {fmt(splits.get(name))}" for name in SPLITS)
              + _md_leakage(get(report, "data", "split", "leakage")),
              "- " + _md_pii(report), "- " + _md_bias(report), "- " + _md_training(report),
              *_md_preference(report), "- " + _md_privacy(report),
              *_md_evaluation(report), "", "- " + _md_memorisation(report), "- " + _md_review_and_policy(report),
              "- " + _md_signoffs(signoffs), "",
              "| stage | status | seconds | records in → out |", "|---|---|---:|---|"]
    lines += [f"| {md_cell(fmt(stage.get('name')))} | {fmt(stage.get('status'))} | {fmt(stage.get('seconds'))} | "
              f"{fmt(stage.get('records_in'))} → {fmt(stage.get('records_out'))} |"
              for stage in report.get("stages") or []]
    skipped = report.get("skipped_stages") or []
    if skipped:
        lines += ["", "**Skipped:** " + "; ".join(f"{fmt(s.get('name'))} ({fmt(s.get('reason'))})" for s in skipped)]
    lines += ["", "Full details: report.html (lineage, environment, per-field PII and bias tables)."]
    return "\n".join(lines) + "\n"
