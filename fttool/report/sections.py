"""Which stage fills which section of report.json, and what the renderings read alike from a report.

A stage declares its section (`Stage.report_section`, a dotted path such as `data.ingest`); build
places each stage's summary there, and the renderings use the same declarations to say why an
empty section is empty (the skip reason of the stage that would have filled it).
"""
from __future__ import annotations

from functools import cache

from fttool.governance.signing import fingerprint
from fttool.report.format import MISSING, fmt, get
from fttool.training.model_ref import DEMO_MODEL_PREFIX

FLOW_STEPS = (("input", "Input"), ("quarantined", "Quarantined"), ("duplicates", "Duplicates"),
              ("dropped_by_policy", "Dropped by policy"), ("kept", "Kept"), ("augmented", "Augmented"))


def preference_unit(report: dict) -> str | None:
    """What one record is when every source holds preference data ("preference pair", "KTO response"); else None."""
    from fttool.data.preference import PREFERENCE_INPUTS

    formats = {source.get("format") for source in (((report.get("data") or {}).get("ingest") or {}).get("sources")
                                                   or [])}
    if not formats or not formats <= set(PREFERENCE_INPUTS):
        return None
    return "KTO response" if formats == {"kto"} else "preference pair"


@cache
def declared_sections() -> dict[str, str]:
    """Each stage's name -> the report section it declares, in pipeline order."""
    from fttool.stages import STAGE_ORDER, stage_class

    return {name: stage_class(name).report_section for name in STAGE_ORDER}


def skip_reason(report: dict, section: str):
    """Why `section` (a dotted path, e.g. 'data.dedup') holds nothing: the skip reason of a stage declaring it."""
    stages = [stage for stage, declared in declared_sections().items() if declared == section]
    for skipped in report.get("skipped_stages") or []:
        if skipped.get("name") in stages:
            return skipped.get("reason") or MISSING
    return None


def demo_model(report: dict):
    """The demo base model's name when the run used one, so no reviewer mistakes it for a real model."""
    base_model = get(report, "training", "base_model") or {}
    if base_model.get("demo"):
        return base_model.get("name") or "demo model"
    recipe_base = get(report, "recipe", "resolved", "model", "base")
    if isinstance(recipe_base, str) and recipe_base.startswith(DEMO_MODEL_PREFIX):
        return recipe_base
    return None


def metric_names(evaluation: dict) -> list[str]:
    """Metrics named in base, tuned or delta, first-seen order, so none is silently dropped."""
    names: dict[str, None] = {}
    for side in ("base", "tuned", "delta"):
        names.update(dict.fromkeys(evaluation.get(side) or {}))
    return list(names)


def privacy_unit(privacy: dict) -> str:
    if privacy.get("unit") == "source record":
        return f"source record (with its augmented copies: up to {fmt(privacy.get('max_examples_per_unit'))} examples)"
    return fmt(privacy.get("unit"))


def signature_text(signoff: dict) -> str:
    """Whether a sign-off of signoff.json is signed, and by which key: 'signed with key SHA256:...' (the fingerprint
    ssh-keygen -l prints) or 'unsigned'. A fingerprint names a key, not its owner: whether the key counts is for
    `fttool verify --allowed-signers`, which a rendering of the run cannot know."""
    if "signature" not in signoff:
        return "unsigned"
    key = signoff.get("key")
    return f"signed with key {fingerprint(key)}" if isinstance(key, str) else "signed, with no public key recorded"


def policy_waiver_text(rule: dict) -> str:
    """A waiver the run's policy applied to a rule of report.json's policy section: the policy file's own entry,
    which names an approver but carries no signature (only a sign-off can be signed)."""
    waiver = rule.get("waiver") or {}
    return (f"waived by {fmt(waiver.get('approver'))} in the policy file until {fmt(waiver.get('expires'))}, "
            f"unsigned: {fmt(waiver.get('reason'))}")
