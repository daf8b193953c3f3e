"""Plant memorisation canaries in the train split (fttool.evaluation.canaries).

This stage runs after augmentation and writes the train split only, so no canary is reworded, audited as
a real record, or placed in validation or test. The memorisation stage draws the same secrets again from
the same parameters instead of reading them from anywhere.
"""
from __future__ import annotations

from itertools import chain

from fttool.data.records import read_jsonl, write_jsonl
from fttool.evaluation.canaries import draw_secrets, planted_records
from fttool.evaluation.settings import CanaryParams
from fttool.pipeline.stage import Stage, StageContext, StageResult


class CanariesStage(Stage):
    name = "canaries"
    reads = ("train",)
    writes = ("train",)
    report_section = "memorisation"
    Params = CanaryParams

    def run(self, ctx: StageContext) -> StageResult:
        params: CanaryParams = ctx.params
        canaries, _, _ = draw_secrets(params.seed, params.canaries, params.references)
        planted = planted_records(canaries, params.repetitions)
        write_jsonl(ctx.outputs["train"], chain(read_jsonl(ctx.inputs["train"]), planted))
        return StageResult(summary={"canaries": len(canaries), "repetitions": params.repetitions,
                                    "planted_records": len(planted)},
                           added={"canary": len(planted)})


STAGE = CanariesStage
