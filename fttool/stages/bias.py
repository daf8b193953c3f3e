"""The bias stage: how the split records spread over the groups of sensitive fields and of demographic mentions
(fttool.fairness.audit). Records are only read, never changed."""
from __future__ import annotations

from fttool.data.engines import engine_problems
from fttool.data.records import SPLITS, count_lines, read_lines
from fttool.fairness.audit import audit_files
from fttool.fairness.settings import BiasParams
from fttool.pipeline.stage import Stage, StageContext, StageResult


class BiasStage(Stage):
    name = "bias"
    reads = SPLITS
    writes = ()
    report_section = "bias"
    Params = BiasParams

    @classmethod
    def unmet_requirements(cls, params: BiasParams) -> list[str]:
        return engine_problems(params.compute)

    def run(self, ctx: StageContext) -> StageResult:
        counts = {split: count_lines(ctx.inputs[split]) for split in SPLITS}
        lines = ((split, ctx.progress(read_lines(ctx.inputs[split]), total=counts[split], desc=f"bias {split}"))
                 for split in SPLITS)
        return StageResult(summary=audit_files(lines, ctx.params, sum(counts.values())))


STAGE = BiasStage
