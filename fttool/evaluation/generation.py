"""Generation for evaluation: both models continue the same tokenized prompts with the same settings."""
from __future__ import annotations

from fttool.evaluation.settings import DecodingParams


def generate(model, tokenizer, prompts: list[list[int]], decoding: DecodingParams, max_new_tokens: int,
             batch_size: int, limit: int | None) -> list[str]:
    """Continuations of tokenized prompts, batched with left padding so every prompt ends where generation
    starts; a prompt too long for the context (`limit` tokens) keeps its end.

    The generator is seeded before the first batch, so two calls with the same settings draw the same
    random numbers: greedy decoding draws none, sampling draws them in the same order for both models.
    """
    import torch
    from transformers import GenerationConfig

    sampling = decoding.strategy == "sample"
    # top_k 0 turns off the top-k cut a model's own generation config may set: temperature and top_p alone shape it.
    config = GenerationConfig(do_sample=sampling, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                              eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                              **({"temperature": decoding.temperature, "top_p": decoding.top_p, "top_k": 0}
                                 if sampling else {}))
    tokenizer.padding_side = "left"
    keep = None if limit is None else max(1, limit - max_new_tokens)
    torch.manual_seed(decoding.seed)
    texts = []
    for start in range(0, len(prompts), batch_size):
        batch = [ids if keep is None else ids[-keep:] for ids in prompts[start:start + batch_size]]
        encoded = tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt").to(model.device)
        with torch.no_grad():
            output = model.generate(**encoded, generation_config=config)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        texts += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return texts


def decoding_summary(decoding: DecodingParams, max_new_tokens: int, batch_size: int) -> dict:
    """The decoding settings both models shared, for the report (sampling settings only when sampling)."""
    return {"strategy": decoding.strategy, "seed": decoding.seed,
            **({"temperature": decoding.temperature, "top_p": decoding.top_p} if decoding.strategy == "sample"
               else {}),
            "max_new_tokens": max_new_tokens, "batch_size": batch_size, "padding_side": "left"}
