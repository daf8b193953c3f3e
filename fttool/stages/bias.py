"""The bias stage: how the split records spread over the groups of sensitive fields and of demographic mentions
(fttool.fairness.audit). Records are only read, never changed."""
from __future__ import annotations

from fttool.data.records import SPLITS, count_lines, read_jsonl
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
        records = ((split, ctx.progress(read_jsonl(ctx.inputs[split]), total=count_lines(ctx.inputs[split]),
                                        desc=f"bias {split}")) for split in SPLITS)
        return StageResult(summary=audit(records, ctx.params))


STAGE = BiasStage
