"""Memorisation canaries (the Secret Sharer, Carlini et al. 2019): the secrets, their records and the exposure maths.

A canary is a random secret in a fixed template, "My account code is 7 3 9 1 4 2.", written into the train
split `repetitions` times. After training, each canary's log-perplexity is ranked among `references` secrets
drawn from the same template and never planted: a model that memorised a canary ranks it near the top.
Secrets come from a seeded generator, so planting and measuring draw the same canaries, controls and
references without storing them anywhere.

Canary records carry ids made from their index and copy number, never from the secret, so ids in the
report do not reveal the secret (a hash of a six-digit secret could be reversed by trying them all).

A candidate's rank is 1 + the number of references that score strictly lower + half the number that score
exactly the same (the mid-rank: a model too flat to tell secrets apart, whose scores all tie, shows about
1 bit, not the maximum). Its exposure in bits is

    exposure = log2(references + 1) - log2(rank)

the rank estimate of the paper with the sampled references standing in for the whole secret space:
0 bits when every reference is more likely, log2(references + 1) bits (the most this sample can show)
when none is.
"""
from __future__ import annotations

import bisect
import math
import random
from collections import Counter
from pathlib import Path

from fttool.data.records import read_jsonl
from fttool.evaluation.rounding import BITS_DIGITS, rounded

CANARY_SOURCE = "canary"
CANARY_PROMPT = "What is my account code?\n"
CANARY_PREFIX = "My account code is"
SECRET_DIGITS = 6
SECRET_SPACE = 10 ** SECRET_DIGITS
TEMPLATE = f"{CANARY_PREFIX} <{SECRET_DIGITS} digits, space-separated>."
METHOD = ("Secret Sharer rank exposure (Carlini et al. 2019): log2(references + 1) - log2(rank of the secret's "
          "log-perplexity among never-planted references); ties take the mid-rank")


def secret_text(secret: int) -> str:
    """The completion a canary or reference trains or is scored on: the template with the secret in it."""
    return f"{CANARY_PREFIX} {' '.join(f'{secret:0{SECRET_DIGITS}d}')}."


def draw_secrets(seed: int, canaries: int, references: int) -> tuple[list[int], list[int], list[int]]:
    """(canaries, controls, references): distinct secrets from the template's space, the same for the same seed.

    Controls are as many never-planted secrets as there are canaries, scored exactly like the canaries:
    their exposure is what a model that memorised nothing shows.
    """
    drawn = random.Random(f"fttool-canaries/{seed}").sample(range(SECRET_SPACE), 2 * canaries + references)
    return drawn[:canaries], drawn[canaries:2 * canaries], drawn[2 * canaries:]


def canary_record(index: int, copy: int, secret: int) -> dict:
    return {"id": f"canary-{index:04d}-{copy:04d}", "source": CANARY_SOURCE, "format": "prompt_completion",
            "prompt": CANARY_PROMPT, "completion": secret_text(secret), "meta": {"canary": index}}


def planted_records(secrets: list[int], repetitions: int) -> list[dict]:
    """Every copy of every canary, canary by canary."""
    return [canary_record(index, copy, secret) for index, secret in enumerate(secrets) for copy in range(repetitions)]


def planted_counts(train_path: Path) -> Counter:
    """Canary index -> copies found in the train split."""
    return Counter(record["meta"]["canary"] for record in read_jsonl(train_path)
                   if record.get("source") == CANARY_SOURCE)


def exposures(scores: list[float], reference_scores: list[float]) -> list[tuple[float, float]]:
    """(rank, exposure in bits) of each score among the reference scores; lower scores are likelier."""
    ordered = sorted(reference_scores)
    top = math.log2(len(ordered) + 1)
    ranked = []
    for score in scores:
        likelier = bisect.bisect_left(ordered, score)
        rank = 1 + likelier + (bisect.bisect_right(ordered, score) - likelier) / 2
        ranked.append((rank, top - math.log2(rank)))
    return ranked


def exposure_stats(bits: list[float]) -> dict:
    return {"max_exposure_bits": rounded(max(bits), BITS_DIGITS),
            "mean_exposure_bits": rounded(sum(bits) / len(bits), BITS_DIGITS)}
