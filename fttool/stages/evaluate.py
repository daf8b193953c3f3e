"""Compare the tuned model with its base on held-out data, overall, per group and on general text.

A thin adapter over fttool.evaluation: it reads the validation and test splits and the forgetting
file, measures both models (fttool.evaluation.comparison, one after the other through
fttool.evaluation.model_pair), writes both models' outputs to evaluation/predictions.jsonl and returns
the summary. A metric that did not improve, a forgetting or fairness failure is recorded, not raised.
"""
from __future__ import annotations

from fttool.data.preference import is_preference
from fttool.data.records import read_jsonl, write_jsonl
from fttool.evaluation.comparison import comparison_summary, evaluation_set, measure
from fttool.evaluation.forgetting import general_passages
from fttool.evaluation.model_pair import base_and_tuned
from fttool.evaluation.settings import EvaluateParams
from fttool.pipeline.stage import Stage, StageContext, StageResult
from fttool.training.modeling import load_tokenizer, resolve_base_model
from fttool.training.quiet import quiet_libraries


class EvaluateStage(Stage):
    name = "evaluate"
    reads = ("validation", "test", "model")
    writes = ()
    artifacts = {"predictions": "evaluation/predictions.jsonl"}
    report_section = "evaluation"
    Params = EvaluateParams

    @classmethod
    def external_inputs(cls, params: EvaluateParams) -> list[str]:
        return [params.forgetting.path] if params.forgetting else []

    def run(self, ctx: StageContext) -> StageResult:
        params: EvaluateParams = ctx.params
        test = list(read_jsonl(ctx.inputs["test"]))
        if any(is_preference(record) for record in test):
            return self._run_on_preferences(ctx, params, test)
        passages = general_passages(ctx.resolve(params.forgetting.path)) if params.forgetting else []
        data = evaluation_set(list(read_jsonl(ctx.inputs["validation"])), test, params, passages)
        quiet_libraries()
        # The tokenizer saved with the model is the one training used (pad token included).
        tuned_dir = ctx.inputs["model"]
        tokenizer = load_tokenizer(str(tuned_dir), params.model)
        base_path = resolve_base_model(params.model, ctx.work_dir, ctx.recipe_dir)
        results = {side: measure(model, tokenizer, data, params)
                   for side, model in base_and_tuned(tuned_dir, base_path, params.model)}
        write_jsonl(ctx.outputs["predictions"], (
            {"id": record["id"], "base": base_text, "tuned": tuned_text, "reference_id": record["id"]}
            for record, base_text, tuned_text in zip(data.prompted, results["base"]["texts"],
                                                      results["tuned"]["texts"])))
        return StageResult(summary=comparison_summary(results, data, params))

    @staticmethod
    def _run_on_preferences(ctx: StageContext, params: EvaluateParams, test: list[dict]) -> StageResult:
        """Preference pairs are compared by the likelihood of chosen over rejected (fttool.evaluation.preference)."""
        from fttool.evaluation.preference import evaluate_preferences

        quiet_libraries()
        tuned_dir = ctx.inputs["model"]
        tokenizer = load_tokenizer(str(tuned_dir), params.model)
        models = base_and_tuned(tuned_dir, resolve_base_model(params.model, ctx.work_dir, ctx.recipe_dir), params.model)
        return StageResult(summary=evaluate_preferences(models, tokenizer, list(read_jsonl(ctx.inputs["validation"])),
                                                        test, params, ctx.outputs["predictions"]))


STAGE = EvaluateStage
