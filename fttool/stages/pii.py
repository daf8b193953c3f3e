"""PII handling: scrub personal data from every split, or drop the records that hold any.

A thin adapter over fttool.pii: the records of each split go through `record_scrubbing` (presidio's
analyzer with fttool's recognizers and the recipe's, the anonymizer and a second scan) and the summary
holds counts, entity types, field names and record ids, never the values found nor the hash key. Under
`strict`, PII left in scrubbed text fails the run. Each finding goes to pii/findings.jsonl for the data owner
(record id, field, type, score, recognizer, a context window with the values masked), outside the report;
`fttool pii sample RUN --type PERSON` prints some. The analysis runs on the recipe's data engine (local worker
processes, or Ray actors with `data.engine: ray`), whose output is the same everywhere, so the engine is left
out of the stage's fingerprint: a run on another engine, or with other pii.workers, is served from the cache.
"""
from __future__ import annotations

import json

from fttool.data.engines import engine_problems
from fttool.data.records import SPLITS, count_lines, read_jsonl, write_jsonl
from fttool.pii.findings import FINDINGS
from fttool.pii.nlp_engines import located, ner_model_inputs, ner_summary, unmet_ner_requirements
from fttool.pii.records import Tally, record_scrubbing
from fttool.pii.scrubber import PiiResidualError, key_digests, operator_spec
from fttool.pii.settings import PiiParams, entities_checked
from fttool.pipeline.stage import Stage, StageContext, StageResult


def _counts_text(counts) -> str:
    return ", ".join(f"{entity} {count}" for entity, count in sorted(counts.items()))


def _summary(params: PiiParams, tally: Tally) -> dict:
    checked = entities_checked(params.entities, params.recognizers)
    return {
        "entities": dict(sorted(tally.entities.items())),
        "by_field": {name: dict(sorted(counts.items())) for name, counts in sorted(tally.by_field.items())},
        "records_with_pii": tally.records_with_pii,
        "records_scanned": tally.records_scanned,
        "residual": dict(sorted(tally.residual.items())),
        "residual_total": sum(tally.residual.values()),
        "nlp_model": params.nlp_model,
        "score_threshold": params.score_threshold,
        "entities_checked": checked,
        "action": params.action,
        "operators": ({entity: operator_spec(params, entity)["type"] for entity in checked}
                      if params.action == "scrub" else {}),
        "custom_recognizers": [r["name"] for r in params.recognizers],
        "dropped": tally.dropped,
        "dropped_example_ids": tally.dropped_example_ids,
        "strict": params.strict,
        "fields_scanned": sorted(tally.fields_scanned),
        "fields_skipped": list(params.skip_fields),
    }


class PiiStage(Stage):
    name = "pii"
    reads = SPLITS
    writes = SPLITS
    # For the data owner, outside the shareable report: where each finding is, with the value masked.
    artifacts = {"findings": FINDINGS}
    report_section = "pii"
    Params = PiiParams
    unkeyed_params = ("compute",)

    @classmethod
    def secret_digests(cls, params: PiiParams) -> dict[str, str]:
        return key_digests(params)

    @classmethod
    def external_inputs(cls, params: PiiParams) -> list[str]:
        # A transformers NER model decides what is found: its files, not its name, are part of the fingerprint.
        return ner_model_inputs(params.ner)

    @classmethod
    def unmet_requirements(cls, params: PiiParams) -> list[str]:
        return unmet_ner_requirements(params.ner) + engine_problems(params.compute)

    def run(self, ctx: StageContext) -> StageResult:
        params: PiiParams = ctx.params
        counts = {split: count_lines(ctx.inputs[split]) for split in SPLITS}
        ctx.outputs["findings"].parent.mkdir(parents=True, exist_ok=True)
        with open(ctx.outputs["findings"], "w", encoding="utf-8") as findings:
            def note(finding: dict) -> None:
                findings.write(json.dumps(finding, ensure_ascii=False) + "\n")

            with record_scrubbing(located(params, ctx.recipe_dir), sum(counts.values()), note) as (scrub, tally):
                for split in SPLITS:
                    scrubbed = scrub(read_jsonl(ctx.inputs[split]))
                    write_jsonl(ctx.outputs[split], ctx.progress(scrubbed, total=counts[split], desc=f"pii {split}"))
        if params.strict and tally.residual:
            raise PiiResidualError(
                f"pii.strict: a second scan still finds PII in scrubbed text ({_counts_text(tally.residual)}; "
                f"where: `fttool pii sample {ctx.run_dir} --residual`); add recognizers or change operators so that "
                "nothing is left, or use action: drop")
        return StageResult(summary={**_summary(params, tally), "ner": ner_summary(params, ctx.recipe_dir)},
                           removed={"pii_detected": tally.dropped} if tally.drops else {})


STAGE = PiiStage
