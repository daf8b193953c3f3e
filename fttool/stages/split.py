"""The split stage: assign every record to train, validation or test (fttool.data.split), then stop leakage."""
from __future__ import annotations

from fttool.data.records import SPLITS
from fttool.data.settings import SplitParams
from fttool.data.split import split_records
from fttool.pipeline.stage import Stage, StageContext, StageResult


class SplitStage(Stage):
    name = "split"
    reads = ("records",)
    writes = SPLITS
    report_section = "data.split"
    Params = SplitParams

    def run(self, ctx: StageContext) -> StageResult:
        return StageResult(summary=split_records(
            ctx.inputs["records"], ctx.params, ctx.outputs, ctx.work_dir,
            lambda records, total: ctx.progress(records, total=total, desc="split: leak check")))


STAGE = SplitStage
