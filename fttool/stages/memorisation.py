"""Measure how much the tuned model memorised the planted canaries (the Secret Sharer, Carlini et al. 2019).

Every candidate secret is scored by its log-perplexity under the model: the summed cross-entropy of
the template's tokens after the canary prompt, both formatted as the train stage formats them (with
the tokenizer's chat template when it has one), EOS included. A candidate's rank is 1 + the number of references
(secrets from the same template that were never planted) that score strictly lower + half the number
that score exactly the same (the mid-rank: a model too flat to tell secrets apart, whose scores all
tie, shows about 1 bit, not the maximum). Its exposure in bits is

    exposure = log2(references + 1) - log2(rank)

the rank estimate of the paper with the sampled references standing in for the whole secret space:
0 bits when every reference is more likely, log2(references + 1) bits (the most this sample can show)
when none is. Unplanted controls are scored the same way, and the base model (adapter off) as well,
so the report shows what exposure looks like without memorisation. The report holds indices, ranks
and exposures only, never a secret.
"""
from __future__ import annotations

import math
from collections import Counter

from fttool.data.records import read_jsonl
from fttool.evaluation.losses import response_token_losses
from fttool.pipeline.plan import thaw
from fttool.pipeline.stage import Stage, StageContext, StageResult
from fttool.stages.canaries import CANARY_SOURCE, SECRET_SPACE, TEMPLATE, canary_record, draw_secrets
from fttool.training.modeling import load_causal_lm, load_tokenizer, quiet_libraries, resolve_base_model

BATCH_SIZE = 64
METHOD = ("Secret Sharer rank exposure (Carlini et al. 2019): log2(references + 1) - log2(rank of the secret's "
          "log-perplexity among never-planted references); ties take the mid-rank")


def log_perplexities(model, tokenizer, records: list[dict]) -> list[float]:
    """Summed cross-entropy (nats) of each record's response tokens after its prompt, tokenized as in training."""
    return [total for total, _ in response_token_losses(model, tokenizer, records, BATCH_SIZE, None)]


def exposures(scores: list[float], reference_scores: list[float]) -> list[tuple[float, float]]:
    """(rank, exposure in bits) of each score among the reference scores; lower scores are likelier."""
    import bisect

    ordered = sorted(reference_scores)
    top = math.log2(len(ordered) + 1)
    ranked = []
    for score in scores:
        likelier = bisect.bisect_left(ordered, score)
        rank = 1 + likelier + (bisect.bisect_right(ordered, score) - likelier) / 2
        ranked.append((rank, top - math.log2(rank)))
    return ranked


def _stats(values: list[float]) -> dict:
    return {"max_exposure_bits": round(max(values), 4), "mean_exposure_bits": round(sum(values) / len(values), 4)}


def planted_counts(train_path) -> Counter:
    """Canary index -> copies found in the train split."""
    return Counter(record["meta"]["canary"] for record in read_jsonl(train_path)
                   if record.get("source") == CANARY_SOURCE)


class MemorisationStage(Stage):
    name = "memorisation"
    version = 2  # 2: ties take the mid-rank
    references = ("train", "model")
    report_section = "memorisation"

    def run(self, ctx: StageContext) -> StageResult:
        import torch
        from peft import PeftModel

        quiet_libraries()
        params = thaw(ctx.params)
        canaries, controls, references = draw_secrets(params["seed"], params["canaries"], params["references"])
        found = planted_counts(ctx.inputs["train"])
        expected = {index: params["repetitions"] for index in range(len(canaries))}
        if dict(found) != expected:
            raise ValueError(f"memorisation: the train split holds {sum(found.values())} canary records for "
                             f"{len(found)} canaries, but {len(canaries)} canaries x {params['repetitions']} "
                             "repetitions were planted; was data/train.jsonl changed after the canaries stage?")

        if not (ctx.inputs["model"] / "adapter_config.json").is_file():
            raise ValueError("memorisation: model/ holds no LoRA adapter; the check compares the adapter switched "
                             "on and off, so it needs train.method lora or qlora")
        model_params = params["model"]
        tokenizer = load_tokenizer(str(ctx.inputs["model"]), model_params)
        base = load_causal_lm(resolve_base_model(model_params, ctx.work_dir, ctx.recipe_dir), model_params)
        model = PeftModel.from_pretrained(base, str(ctx.inputs["model"]))
        model.to("cuda" if torch.cuda.is_available() else "cpu").eval()

        candidates = [canary_record(index, 0, secret)
                      for index, secret in enumerate((*canaries, *controls, *references))]
        ranked_count = 2 * len(canaries)  # canaries, then controls; the rest are the references

        def measure() -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
            scores = log_perplexities(model, tokenizer, candidates)
            ranked = exposures(scores[:ranked_count], scores[ranked_count:])
            return ranked[:len(canaries)], ranked[len(canaries):]

        with model.disable_adapter():
            base_canaries, base_controls = measure()
        tuned_canaries, tuned_controls = measure()

        canary_bits = [bits for _, bits in tuned_canaries]
        limit = params["max_exposure_bits"]
        summary = {
            "status": "pass" if max(canary_bits) < limit else "fail",
            "method": METHOD,
            "template": TEMPLATE,
            "secret_space": SECRET_SPACE,
            "repetitions": params["repetitions"],
            "planted_records": len(canaries) * params["repetitions"],
            "references": len(references),
            "max_measurable_bits": round(math.log2(len(references) + 1), 4),
            "limit_bits": limit,
            **_stats(canary_bits),
            "canaries": [{"index": index, "rank": rank, "exposure_bits": round(bits, 4),
                          "base_rank": base_rank, "base_exposure_bits": round(base_bits, 4)}
                         for index, ((rank, bits), (base_rank, base_bits))
                         in enumerate(zip(tuned_canaries, base_canaries))],
            "controls": {"count": len(controls), **_stats([bits for _, bits in tuned_controls])},
            "base_model": {"canaries": _stats([bits for _, bits in base_canaries]),
                           "controls": _stats([bits for _, bits in base_controls])},
            "seed": params["seed"],
        }
        return StageResult(summary=summary)


STAGE = MemorisationStage
