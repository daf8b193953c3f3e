"""Plant memorisation canaries in the train split (the Secret Sharer, Carlini et al. 2019).

A canary is a random secret in a fixed template, "My account code is 7 3 9 1 4 2.", written into the
train split `repetitions` times. After training, the memorisation stage ranks each canary's
log-perplexity among `references` secrets drawn from the same template and never planted: a model
that memorised a canary ranks it near the top. Secrets come from a seeded generator, so the
memorisation stage draws the same canaries, controls and references again instead of reading them
from anywhere. This stage runs after augmentation and writes the train split only, so no canary is
reworded, audited as a real record, or placed in validation or test.

Canary records carry ids made from their index and copy number, never from the secret, so ids in the
report do not reveal the secret (a hash of a six-digit secret could be reversed by trying them all).
"""
from __future__ import annotations

import random
from itertools import chain

from fttool.data.records import read_jsonl, write_jsonl
from fttool.pipeline.plan import thaw
from fttool.pipeline.stage import Stage, StageContext, StageResult

CANARY_SOURCE = "canary"
CANARY_PROMPT = "What is my account code?\n"
CANARY_PREFIX = "My account code is"
SECRET_DIGITS = 6
SECRET_SPACE = 10 ** SECRET_DIGITS
TEMPLATE = f"{CANARY_PREFIX} <{SECRET_DIGITS} digits, space-separated>."


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


class CanariesStage(Stage):
    name = "canaries"
    reads = ("train",)
    writes = ("train",)
    report_section = "memorisation"

    def run(self, ctx: StageContext) -> StageResult:
        params = thaw(ctx.params)
        canaries, _, _ = draw_secrets(params["seed"], params["canaries"], params["references"])
        planted = [canary_record(index, copy, secret) for index, secret in enumerate(canaries)
                   for copy in range(params["repetitions"])]
        write_jsonl(ctx.outputs["train"], chain(read_jsonl(ctx.inputs["train"]), planted))
        return StageResult(summary={"canaries": len(canaries), "repetitions": params["repetitions"],
                                    "planted_records": len(planted)},
                           added={"canary": len(planted)})


STAGE = CanariesStage
