"""Measure how much the tuned model memorised the planted canaries (fttool.evaluation.memorisation).

The tuned model and its base (the same adapter switched off) rank the canaries and never-planted
controls among never-planted references; the report holds indices, ranks and exposures only.
"""
from __future__ import annotations

from fttool.evaluation.canaries import draw_secrets, planted_counts
from fttool.evaluation.memorisation import (
    candidate_records,
    check_planted,
    memorisation_summary,
    rank_canaries_and_controls,
)
from fttool.evaluation.model_pair import base_and_tuned, is_adapter
from fttool.evaluation.settings import MemorisationParams
from fttool.pipeline.stage import Stage, StageContext, StageResult
from fttool.training.modeling import load_tokenizer, resolve_base_model
from fttool.training.quiet import quiet_libraries


class MemorisationStage(Stage):
    name = "memorisation"
    references = ("train", "model")
    report_section = "memorisation"
    Params = MemorisationParams

    def run(self, ctx: StageContext) -> StageResult:
        params: MemorisationParams = ctx.params
        canaries, controls, references = draw_secrets(params.seed, params.canaries, params.references)
        check_planted(planted_counts(ctx.inputs["train"]), params)
        tuned_dir = ctx.inputs["model"]
        if not is_adapter(tuned_dir):
            raise ValueError("memorisation: model/ holds no LoRA adapter; the check compares the adapter switched "
                             "on and off, so it needs train.method lora or qlora")
        quiet_libraries()
        tokenizer = load_tokenizer(str(tuned_dir), params.model)
        candidates = candidate_records(canaries, controls, references)
        ranked = {side: rank_canaries_and_controls(model, tokenizer, candidates, len(canaries))
                  for side, model in base_and_tuned(tuned_dir, resolve_base_model(params.model, ctx.work_dir,
                                                                                  ctx.recipe_dir), params.model)}
        return StageResult(summary=memorisation_summary(params, len(references), ranked["tuned"], ranked["base"]))


STAGE = MemorisationStage
