"""The bias stage: how the split records spread over the groups of sensitive fields and of demographic mentions
(fttool.fairness.audit). Records are only read, never changed."""
from __future__ import annotations

from fttool.data.records import SPLITS, read_jsonl
from fttool.fairness.audit import audit
from fttool.fairness.settings import BiasParams
from fttool.pipeline.stage import Stage, StageContext, StageResult


class BiasStage(Stage):
    name = "bias"
    version = 3
    reads = SPLITS
    writes = ()
    report_section = "bias"
    Params = BiasParams

    def run(self, ctx: StageContext) -> StageResult:
        records = ((split, read_jsonl(ctx.inputs[split])) for split in SPLITS)
        return StageResult(summary=audit(records, ctx.params, lambda items, desc: ctx.progress(items, desc=desc)))


STAGE = BiasStage
