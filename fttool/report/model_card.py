"""MODEL_CARD.md: a Hugging Face style model card filled in from report.json alone.

The card follows the sections of the Hugging Face model card template (model details, intended use,
training data, evaluation, limitations, compute, licence) and ends with a table that maps the items
of the EU AI Act's Annex IV technical documentation to the report sections holding the evidence. It
states what the report shows and says so where the report holds nothing: nothing is filled in from
elsewhere. Like the report, it holds counts, metrics and ids, never record text.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fttool.governance.approvals import given_signoffs
from fttool.pipeline.layout import MODEL_CARD
from fttool.report.format import fmt, get, md_cell, processes_text
from fttool.report.sections import signature_text, skip_reason
from fttool.training.model_ref import DEMO_MODEL_PREFIX, is_local_model

MODEL_CARD_FILE = MODEL_CARD
NOT_RECORDED = "not recorded in the report"

# (Annex IV point, what it asks for, report sections that answer it). Point numbers follow Annex IV of
# Regulation (EU) 2024/1689.
ANNEX_IV = (
    ("1(a)", "Intended purpose, provider, date and version", ("run", "recipe")),
    ("1(c)", "Versions of the software used", ("environment",)),
    ("2(a)", "Development methods; pre-trained models and tools used", ("training",)),
    ("2(c)", "Computational resources used to develop, train and test", ("environment", "stages", "training")),
    ("2(d)", "Data provenance, scope, selection and cleaning", ("data", "pii", "augmentation", "lineage")),
    ("2(e)", "Human oversight measures", ("review", "signoff")),
    ("2(g)", "Validation and testing data and metrics", ("evaluation", "memorisation")),
    ("2(g)", "Tests of potentially discriminatory impacts", ("bias", "fairness")),
    ("2(g)", "Test logs and reports, dated and signed by responsible persons", ("policy", "signoff", "lineage")),
    ("2(h)", "Cybersecurity and privacy measures", ("pii", "privacy", "memorisation")),
    ("3", "Limitations, and accuracy for groups of persons", ("evaluation", "fairness")),
)


def _fmt(value) -> str:
    """A value as the report's renderings write it, safe in a Markdown table; absent values say so in words."""
    return md_cell(fmt(value, missing=NOT_RECORDED))


def _section_state(report: dict, name: str) -> str:
    """Whether a report section holds results, and if not, why."""
    value = report.get(name)
    if name == "policy":
        return "evaluated" if get(value, "evaluated") else "not evaluated (run fttool check)"
    if name == "fairness" and isinstance(value, dict) and value.get("evaluated") is False:
        return "not evaluated"
    if name == "privacy" and isinstance(value, dict) and not value.get("enabled"):
        return "not differentially private"
    if isinstance(value, dict) and value.get("status"):
        return f"status {value['status']}"
    if name == "signoff":
        return (f"{len(value)} earlier sign-off(s), superseded" if value
                else "none superseded (those given are under Sign-offs)")
    if name == "review":
        return f"{value.get('rated')} outputs rated" if isinstance(value, dict) else "no human review imported"
    if value is None:
        return "not run" if name in report else "section absent"
    return "present"


def _base_model(report: dict) -> dict:
    training = report.get("training") or {}
    recipe_model = get(report, "recipe", "resolved", "model") or {}
    base = dict(recipe_model)
    base.update({k: v for k, v in (training.get("base_model") or {}).items() if v is not None})
    return base


def _front_matter(report: dict, base: dict) -> list[str]:
    lines = ["---", "library_name: peft" if get(report, "training", "method") in ("lora", "qlora") else
             "library_name: transformers"]
    if base.get("license"):
        lines.append(f"license: {base['license']}")
    name = base.get("name") or base.get("base") or ""
    # Hub metadata names a hub model; a local directory or the demo model has no hub id to give.
    if name and not name.startswith(DEMO_MODEL_PREFIX) and not is_local_model(name):
        lines.append(f"base_model: {name}")
    lines += ["tags:", "- fttool", "---", ""]
    return lines


def _model_details(report: dict, base: dict) -> list[str]:
    run, training = report.get("run") or {}, report.get("training") or {}
    lora = training.get("lora") or {}
    lines = ["## Model details", "",
             f"- **Run:** {_fmt(run.get('name'))}, id `{_fmt(run.get('id'))}`, finished {_fmt(run.get('finished_at'))}",
             f"- **Made with:** fttool {_fmt(run.get('fttool_version'))}, recipe fingerprint "
             f"`{_fmt(get(report, 'recipe', 'fingerprint'))}`"]
    if not training:
        reason = skip_reason(report, "training") or NOT_RECORDED
        return lines + [f"- **Model:** none trained in this run ({reason}): this card describes the prepared data",
                        ""]
    lines += [f"- **Base model:** `{_fmt(base.get('name') or base.get('base'))}`"
              + (f" at revision `{base['revision']}`" if base.get("revision") else ""),
              f"- **Fine-tuning method:** {_fmt(training.get('method'))}",
              f"- **Objective:** {_fmt(get(training, 'preference', 'objective') or 'sft')}"]
    if lora:
        targets = lora.get("target_modules")
        lines.append(f"- **LoRA:** r={_fmt(lora.get('r'))}, alpha={_fmt(lora.get('alpha'))}, "
                     f"dropout={_fmt(lora.get('dropout'))}, target modules: {_fmt(targets)}")
    lines.append(f"- **Parameters:** {_fmt(training.get('trainable_parameters'))} trainable of "
                 f"{_fmt(training.get('total_parameters'))}")
    if base.get("demo") or str(base.get("name") or base.get("base") or "").startswith(DEMO_MODEL_PREFIX):
        lines += ["", "> **Demo model.** The base is fttool's untrained random demo model: this adapter shows that "
                  "the pipeline works and is not fit for any use."]
    return lines + [""]


def _intended_use(report: dict) -> list[str]:
    description = get(report, "recipe", "resolved", "description")
    return ["## Intended use", "",
            f"- **Stated purpose (recipe description):** {_fmt(description)}",
            "- **Out-of-scope uses:** not stated in the recipe; the model owner must state them before release.", ""]


def _training_data(report: dict) -> list[str]:
    data = report.get("data") or {}
    counts, splits = data.get("counts") or {}, data.get("splits") or {}
    lines = ["## Training data", ""]
    for source in get(data, "ingest", "sources") or []:
        lines.append(f"- Source `{_fmt(source.get('path'))}` (tag {_fmt(source.get('tag'))}, format "
                     f"{_fmt(source.get('format'))}): {_fmt(source.get('lines'))} records, {_fmt(source.get('kept'))} "
                     f"passed ingest ({_fmt(source.get('quarantined'))} quarantined)")
    passed = sum(source.get("kept") or 0 for source in get(data, "ingest", "sources") or [])
    if passed and passed != counts.get("kept"):
        lines.append(f"- Of the {_fmt(passed)} records that passed ingest, {_fmt(counts.get('kept'))} are kept "
                     f"overall: {_fmt(counts.get('duplicates'))} duplicates and "
                     f"{_fmt(counts.get('dropped_by_policy'))} records dropped by the PII policy are removed after "
                     "ingest, across all sources.")
    lines += [f"- Record flow: {_fmt(counts.get('input'))} in, {_fmt(counts.get('quarantined'))} quarantined, "
              f"{_fmt(counts.get('duplicates'))} duplicates removed, {_fmt(counts.get('dropped_by_policy'))} dropped "
              f"by policy, {_fmt(counts.get('kept'))} kept, {_fmt(counts.get('augmented'))} augmented, "
              f"{_fmt(counts.get('canaries', 0))} memorisation canaries planted in train",
              f"- Splits: train {_fmt(splits.get('train'))}, validation {_fmt(splits.get('validation'))}, "
              f"test {_fmt(splits.get('test'))}"]
    pii = report.get("pii")
    lines.append("- Personal data: " + (
        f"{_fmt(pii.get('records_with_pii'))} of {_fmt(pii.get('records_scanned'))} records had PII, action "
        f"{_fmt(pii.get('action'))}, residual after scrubbing {_fmt(pii.get('residual_total'))}"
        if isinstance(pii, dict) else "not scanned (the PII stage did not run)"))
    bias = report.get("bias")
    lines.append(f"- Representation audit: {_fmt(bias.get('status')) if isinstance(bias, dict) else 'not run'}")
    return lines + [""]


def _evaluation(report: dict) -> list[str]:
    evaluation = report.get("evaluation")
    lines = ["## Evaluation", ""]
    if not isinstance(evaluation, dict):
        lines.append("The tuned model was not evaluated in this run.")
    else:
        base, tuned, delta = (evaluation.get(side) or {} for side in ("base", "tuned", "delta"))
        names = list(dict.fromkeys([*base, *tuned]))
        lines += [f"On {_fmt(evaluation.get('samples'))} test records (held out from training):", "",
                  "| metric | base | tuned | change |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {_fmt(base.get(name))} | {_fmt(tuned.get(name))} | {_fmt(delta.get(name))} |"
                  for name in names if not isinstance(base.get(name), (dict, list))]
    fairness = report.get("fairness")
    if isinstance(fairness, dict):
        lines += ["", "- **Per-group results (fairness):** "
                  + (_fmt(fairness.get("status")) if fairness.get("evaluated", True) else
                     f"not evaluated ({_fmt(fairness.get('reason'))})")]
    memorisation = report.get("memorisation")
    if isinstance(memorisation, dict):
        lines.append(f"- **Memorisation (canary exposure):** {_fmt(memorisation.get('status'))}: most exposed canary "
                     f"{_fmt(memorisation.get('max_exposure_bits'))} bits, "
                     f"mean {_fmt(memorisation.get('mean_exposure_bits'))} "
                     f"bits (limit {_fmt(memorisation.get('limit_bits'))}; never-planted controls mean "
                     f"{_fmt(get(memorisation, 'controls', 'mean_exposure_bits'))} bits)")
    review = report.get("review")
    if isinstance(review, dict):
        means = review.get("mean_rating") or {}
        lines.append(f"- **Human review:** {_fmt(review.get('rated'))} of {_fmt(review.get('predictions'))} outputs "
                     f"rated; mean rating base {_fmt(means.get('base'))}, tuned {_fmt(means.get('tuned'))}; "
                     f"preferred: {_fmt(review.get('preference'))}")
    else:
        lines.append("- **Human review:** none imported (`fttool review export` / `fttool review import`)")
    return lines + [""]


def _limitations(report: dict) -> list[str]:
    found = []
    if get(report, "training", "base_model", "demo"):
        found.append("The base model is an untrained demo model; its outputs are noise.")
    for name, label in (("bias", "representation audit"), ("fairness", "per-group evaluation"),
                        ("memorisation", "memorisation check")):
        if get(report, name, "status") == "fail":
            found.append(f"The {label} failed; see report.json `{name}`.")
    policy = report.get("policy") or {}
    if policy.get("evaluated") and not policy.get("passed"):
        failed = [rule["id"] for rule in policy.get("rules") or [] if rule.get("status") == "failed"]
        found.append(f"Policy {_fmt(policy.get('policy'))} failed: {_fmt(failed)}.")
    if report.get("memorisation"):
        found.append("Memorisation canaries (random account codes, no real data) were trained into this model.")
    found.append("Results hold for the test split of this run's data; they say nothing about other data or uses.")
    return ["## Bias, risks and limitations", "", *(f"- {item}" for item in found), ""]


def _compute(report: dict) -> list[str]:
    environment, training = report.get("environment") or {}, report.get("training") or {}
    seconds = sum(stage.get("seconds") or 0 for stage in report.get("stages") or [])
    memory = environment.get("memory_bytes")
    launch = training.get("launch") or {}
    machines = launch.get("machines", 1)
    processes = (f" in {launch['num_processes']} processes ({_fmt(launch.get('strategy'))}"
                 + (f", {_fmt(launch.get('processes_per_machine'))} on each of {machines} machines" if machines > 1
                    else "") + ")") if launch else ""
    return ["## Compute and environmental impact", "",
            f"- **Hardware{' (machine 0)' if machines > 1 else ''}:** {_fmt(environment.get('cpu_model'))}, "
            f"{_fmt(environment.get('cpu_count'))} CPUs, "
            f"{_fmt(round(memory / 2 ** 30, 1) if isinstance(memory, int) else None)} GiB memory, GPUs: "
            f"{_fmt(environment.get('gpus'))}",
            f"- **Training:** {_fmt(training.get('steps'))} steps on {_fmt(training.get('device'))}{processes} in "
            f"{_fmt(training.get('seconds'))} s; all stages {seconds:.1f} s (cached stages count 0)",
            *([f"- **Training processes:** {processes_text(training)}"] if training else []),
            "- **Energy and emissions:** not measured by fttool.",
            f"- **Software:** Python {_fmt(environment.get('python'))}; "
            + ", ".join(f"{name} {version}" for name, version in (environment.get("packages") or {}).items()
                        if version), ""]


def _licence(base: dict) -> list[str]:
    return ["## Licence", "",
            f"- **Base model licence:** {_fmt(base.get('license'))}. The adapter is a derivative of the base model; "
            "its terms apply.", ""]


def _signoffs(signoffs: Sequence[dict]) -> list[str]:
    """Who signed off what, as signoff.json records it: name, role, time, waivers and the signing key's fingerprint."""
    lines = ["## Sign-offs", ""]
    if not signoffs:
        return lines + ["Unsigned: no one has signed off this run (`fttool signoff`).", ""]
    for entry in signoffs:
        state = "this run" if entry.get("approves") else "an earlier version of the report"
        # Which key signed, so a reader can check it against the signers they trust; verify checks the signature.
        lines.append(f"- {_fmt(entry.get('by'))} ({_fmt(entry.get('role'))}), {_fmt(entry.get('at'))}: approved "
                     f"{state} ({signature_text(entry)})")
        lines += [f"  - waived {_fmt(w.get('rule'))}: {_fmt(w.get('reason'))}" for w in entry.get("waivers") or []]
    return lines + ["", "As `fttool signoff` recorded them in signoff.json. A fingerprint names the key, not its "
                        "owner: `fttool verify RUN_DIR --allowed-signers FILE` checks each signature and says whose "
                        "key it is.", ""]


def _annex_iv(report: dict) -> list[str]:
    lines = ["## EU AI Act Annex IV: where the evidence is", "",
             "Which report.json sections answer the Annex IV technical documentation items this pipeline can "
             "speak to. It points to evidence; it is not a conformity assessment.", "",
             "| Annex IV | Item | report.json sections | In this run |", "|---|---|---|---|"]
    for point, item, sections in ANNEX_IV:
        states = "; ".join(f"{name}: {_section_state(report, name)}" for name in sections)
        lines.append(f"| {point} | {item} | {', '.join(f'`{s}`' for s in sections)} | {states} |")
    return lines + [""]


def render_model_card(report: dict, signoffs: Sequence[dict] = ()) -> str:
    """The card for `report`; `signoffs` are signoff.json's entries, each with `approves` (of this report.json)."""
    base = _base_model(report)
    lines = [*_front_matter(report, base), f"# Model card: {_fmt(get(report, 'run', 'name'))}", "",
             "Generated by fttool from this run's report.json; every figure below is in that report.", "",
             *_model_details(report, base), *_intended_use(report), *_training_data(report), *_evaluation(report),
             *_limitations(report), *_compute(report), *_licence(base), *_signoffs(signoffs),
             *_annex_iv(report)]
    return "\n".join(lines)


def write_model_card(report: dict, run_dir: Path) -> Path:
    path = Path(run_dir) / MODEL_CARD_FILE
    path.write_text(render_model_card(report, given_signoffs(run_dir)), encoding="utf-8")
    return path
