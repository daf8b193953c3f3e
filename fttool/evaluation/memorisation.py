"""How much a tuned model memorised the planted canaries, against its base and never-planted controls.

Every candidate secret is scored by its log-perplexity under the model: the summed cross-entropy of the
template's tokens after the canary prompt, both formatted as training formats them (with the tokenizer's
chat template when it has one), EOS included. Canaries and controls are ranked among the references
(fttool.evaluation.canaries), for the tuned model and for its base (adapter off), so the report shows what
exposure looks like without memorisation. The summary holds indices, ranks and exposures only, never a secret.
"""
from __future__ import annotations

import math
from collections import Counter

from fttool.evaluation.canaries import (
    METHOD,
    SECRET_SPACE,
    TEMPLATE,
    canary_record,
    exposure_stats,
    exposures,
)
from fttool.evaluation.losses import response_token_losses
from fttool.evaluation.rounding import BITS_DIGITS, rounded
from fttool.evaluation.settings import CanaryParams

BATCH_SIZE = 64

Ranked = list[tuple[float, float]]  # (rank, exposure in bits) per secret


def check_planted(found: Counter, params: CanaryParams) -> None:
    """Raise unless the train split holds exactly the canaries the parameters plant."""
    if dict(found) != {index: params.repetitions for index in range(params.canaries)}:
        raise ValueError(f"memorisation: the train split holds {sum(found.values())} canary records for "
                         f"{len(found)} canaries, but {params.canaries} canaries x {params.repetitions} "
                         "repetitions were planted; was data/train.jsonl changed after the canaries stage?")


def log_perplexities(model, tokenizer, records: list[dict]) -> list[float]:
    """Summed cross-entropy (nats) of each record's response tokens after its prompt, tokenized as in training."""
    return [total for total, _ in response_token_losses(model, tokenizer, records, BATCH_SIZE, None)]


def candidate_records(canaries: list[int], controls: list[int], references: list[int]) -> list[dict]:
    """One record per secret to score: canaries, then controls, then references."""
    return [canary_record(index, 0, secret) for index, secret in enumerate((*canaries, *controls, *references))]


def rank_canaries_and_controls(model, tokenizer, candidates: list[dict], canaries: int) -> tuple[Ranked, Ranked]:
    """(canaries, controls) ranked among the references, for `model` as it is now (adapter on or off)."""
    scores = log_perplexities(model, tokenizer, candidates)
    ranked = exposures(scores[:2 * canaries], scores[2 * canaries:])
    return ranked[:canaries], ranked[canaries:]


def memorisation_summary(params: CanaryParams, references: int, tuned: tuple[Ranked, Ranked],
                         base: tuple[Ranked, Ranked]) -> dict:
    """The report's `memorisation` section from the (canaries, controls) rankings of both models."""
    (tuned_canaries, tuned_controls), (base_canaries, base_controls) = tuned, base
    canary_bits = [bits for _, bits in tuned_canaries]
    limit = params.max_exposure_bits
    return {
        "status": "pass" if max(canary_bits) < limit else "fail",
        "method": METHOD,
        "template": TEMPLATE,
        "secret_space": SECRET_SPACE,
        "repetitions": params.repetitions,
        "planted_records": params.canaries * params.repetitions,
        "references": references,
        "max_measurable_bits": rounded(math.log2(references + 1), BITS_DIGITS),
        "limit_bits": limit,
        **exposure_stats(canary_bits),
        "canaries": [{"index": index, "rank": rank, "exposure_bits": rounded(bits, BITS_DIGITS),
                      "base_rank": base_rank, "base_exposure_bits": rounded(base_bits, BITS_DIGITS)}
                     for index, ((rank, bits), (base_rank, base_bits))
                     in enumerate(zip(tuned_canaries, base_canaries))],
        "controls": {"count": len(tuned_controls), **exposure_stats([bits for _, bits in tuned_controls])},
        "base_model": {"canaries": exposure_stats([bits for _, bits in base_canaries]),
                       "controls": exposure_stats([bits for _, bits in base_controls])},
        "seed": params.seed,
    }
