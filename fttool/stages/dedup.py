"""The dedup stage: clean every record and drop duplicates (fttool.data.dedup), keeping the first."""
from __future__ import annotations

from fttool.data.dedup import Deduplication, record_lines
from fttool.data.embeddings import model_dir
from fttool.data.engines import engine_problems
from fttool.data.records import count_lines
from fttool.data.settings import DedupParams
from fttool.pipeline.stage import Stage, StageContext, StageResult


class DedupStage(Stage):
    name = "dedup"
    reads = ("records",)
    writes = ("records",)
    report_section = "data.dedup"
    Params = DedupParams

    @classmethod
    def external_inputs(cls, params: DedupParams) -> list[str]:
        # The encoder's files decide which records go, so they belong in the fingerprint and the lineage.
        return [str(model_dir())] if params.semantic else []

    @classmethod
    def unmet_requirements(cls, params: DedupParams) -> list[str]:
        return engine_problems(params.compute)

    def run(self, ctx: StageContext) -> StageResult:
        deduplication = Deduplication(ctx.params, ctx.work_dir)
        try:
            lines = ctx.progress(record_lines(ctx.inputs["records"]), total=count_lines(ctx.inputs["records"]),
                                 desc="dedup")
            with open(ctx.outputs["records"], "w", encoding="utf-8") as out:
                out.writelines(deduplication.kept_lines(lines))
        finally:
            deduplication.close()
        return StageResult(removed=dict(deduplication.removed), summary=deduplication.summary())


STAGE = DedupStage
