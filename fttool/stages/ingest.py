"""The ingest stage: read the recipe's sources into fttool's record shape (fttool.data.ingest), quarantining
each input record that is unusable."""
from __future__ import annotations

from fttool.data.engines import engine_problems
from fttool.data.ingest import Quarantine, ingest_source, open_source
from fttool.data.settings import IngestParams
from fttool.pipeline.stage import Stage, StageContext, StageResult


class IngestStage(Stage):
    name = "ingest"
    reads = ()
    writes = ("records",)
    artifacts = {"quarantine": "quarantine.jsonl"}
    report_section = "data.ingest"
    Params = IngestParams

    @classmethod
    def external_inputs(cls, params: IngestParams) -> list[str]:
        inputs = []
        for source in params.sources:
            if source.hub:
                from fttool.data.hub import HubSourceError, snapshot_dir

                assert source.revision, "the recipe rules require it for a hub source"
                try:  # the snapshot is hashed into the lineage like a local file
                    inputs.append(str(snapshot_dir(source.hub, source.revision)))
                except HubSourceError:
                    inputs.append(f"hub:{source.hub}@{source.revision}")  # ingest then fails naming the source
            else:
                assert source.path is not None, "a source without hub has a path"
                inputs.append(source.path)
        return inputs

    @classmethod
    def unmet_requirements(cls, params: IngestParams) -> list[str]:
        return engine_problems(params.compute)

    def run(self, ctx: StageContext) -> StageResult:
        params: IngestParams = ctx.params
        sources, read, blank = [], 0, 0
        with open(ctx.outputs["records"], "wb") as records_out, open(ctx.outputs["quarantine"], "wb") as handle:
            quarantine = Quarantine(handle, self.artifacts["quarantine"])
            for source in params.sources:
                summary, source_blank = ingest_source(source, open_source(source, ctx.resolve), params.max_chars,
                                                      records_out, quarantine, params.compute,
                                                      lambda items, desc: ctx.progress(items, desc=desc))
                sources.append(summary)
                read += summary["lines"]
                blank += source_blank
        removed = dict(sorted(quarantine.by_reason.items()))
        return StageResult(records_read=read, removed=removed,
                           summary={"sources": sources, "quarantined_by_reason": removed, "blank_lines": blank,
                                    "kept": sum(source["kept"] for source in sources),
                                    "quarantine": quarantine.summary()})


STAGE = IngestStage
