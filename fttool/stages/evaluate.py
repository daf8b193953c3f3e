"""Compare the tuned model with its base on held-out data.

For each model: the mean token cross-entropy on the response tokens of the validation and test splits
(prompt tokens masked, as in training), perplexity from the test loss, and ROUGE-1/2/L, BLEU, exact
match and token F1 (fttool.metrics) of greedy generations on the test prompts against the references. The model is
loaded once: the base is the tuned model with its adapter switched off, so both see identical weights
and tokenization.
"""
from __future__ import annotations

import math

from fttool.metrics import DEFINITIONS, GENERATION_METRICS, generation_metrics
from fttool.modeling import load_causal_lm, load_tokenizer, quiet_libraries, resolve_base_model
from fttool.recipe.plan import thaw
from fttool.records import prompt_and_response, read_jsonl, write_jsonl
from fttool.stages.base import Stage, StageContext, StageResult

METRICS = ("validation_loss", "test_loss", "perplexity", *GENERATION_METRICS)
GENERATION_SEED = 0


def _loss_example(tokenizer, prompt: str, response: str, limit: int | None) -> tuple[list[int], list[int]]:
    """(input ids, labels) built like TRL builds them: EOS after the response, the prompt masked with -100.

    The response starts where the tokenized prompt and prompt + response diverge, as in TRL, since a
    token can merge across the boundary.
    """
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = tokenizer(prompt + response + tokenizer.eos_token)["input_ids"]
    start = 0
    while start < min(len(prompt_ids), len(ids)) and prompt_ids[start] == ids[start]:
        start += 1
    labels = [-100] * start + ids[start:]
    return ids[:limit], labels[:limit]


def response_loss(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int, limit: int | None) -> float | None:
    """Mean cross-entropy over every response token of `pairs` (not a mean of per-example means)."""
    import torch
    import torch.nn.functional as F

    examples = [_loss_example(tokenizer, prompt, response, limit) for prompt, response in pairs]
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, row_labels) in enumerate(batch):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            labels[row, :len(ids)] = torch.tensor(row_labels)
            attention[row, :len(ids)] = 1
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device)).logits
        # Position t predicts token t + 1.
        logits, targets = logits[:, :-1].float(), labels[:, 1:].to(logits.device)
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100,
                                 reduction="sum").item()
        count += int((targets != -100).sum())
    return total / count if count else None


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
             limit: int | None) -> list[str]:
    """Greedy continuations, batched with left padding so every prompt ends where generation starts."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                              eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    tokenizer.padding_side = tokenizer.truncation_side = "left"  # an overlong prompt keeps its end
    torch.manual_seed(GENERATION_SEED)
    texts = []
    for start in range(0, len(prompts), batch_size):
        encoded = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                            truncation=limit is not None,
                            max_length=None if limit is None else max(1, limit - max_new_tokens)).to(model.device)
        with torch.no_grad():
            output = model.generate(**encoded, generation_config=config)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        texts += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return texts


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


class EvaluateStage(Stage):
    name = "evaluate"
    reads = ("validation", "test", "model")
    writes = ()
    artifacts = {"predictions": "evaluation/predictions.jsonl"}
    report_section = "evaluation"
    version = 2

    def run(self, ctx: StageContext) -> StageResult:
        import torch
        from peft import PeftModel

        quiet_libraries()
        params = thaw(ctx.params)
        model_params = params["model"]
        validation = [prompt_and_response(record) for record in read_jsonl(ctx.inputs["validation"])]
        test_records = list(read_jsonl(ctx.inputs["test"]))
        test = [prompt_and_response(record) for record in test_records]
        # Generation needs a prompt to continue; records without one (plain text) count in the losses only.
        prompted = [(record["id"], prompt, response) for record, (prompt, response) in zip(test_records, test)
                    if prompt]
        if params["max_samples"]:
            prompted = prompted[:params["max_samples"]]

        # The tokenizer saved with the adapter is the one training used (pad token included).
        tokenizer = load_tokenizer(str(ctx.inputs["model"]), model_params)
        base = load_causal_lm(resolve_base_model(model_params, ctx.work_dir, ctx.recipe_dir), model_params)
        model = PeftModel.from_pretrained(base, str(ctx.inputs["model"]))
        model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        limit = getattr(model.config, "max_position_embeddings", None)
        batch_size, max_new_tokens = params["batch_size"], params["max_new_tokens"]

        def measure() -> tuple[dict, list[str]]:
            texts = generate(model, tokenizer, [prompt for _, prompt, _ in prompted], max_new_tokens, batch_size,
                             limit)
            test_loss = response_loss(model, tokenizer, test, batch_size, limit)
            metrics = {
                "validation_loss": _round(response_loss(model, tokenizer, validation, batch_size, limit)),
                "test_loss": _round(test_loss),
                "perplexity": None if test_loss is None else round(math.exp(test_loss), 4),
                **{name: _round(value) for name, value in
                   generation_metrics(texts, [response for _, _, response in prompted]).items()},
            }
            return metrics, texts

        with model.disable_adapter():
            base_metrics, base_texts = measure()
        tuned_metrics, tuned_texts = measure()

        write_jsonl(ctx.outputs["predictions"], (
            {"id": record_id, "base": base_text, "tuned": tuned_text, "reference_id": record_id}
            for (record_id, _, _), base_text, tuned_text in zip(prompted, base_texts, tuned_texts)))
        delta = {metric: (None if base_metrics[metric] is None or tuned_metrics[metric] is None
                          else _round(tuned_metrics[metric] - base_metrics[metric]))
                 for metric in METRICS}
        return StageResult(summary={
            "base_model": model_params["base"],
            "samples": len(prompted),
            "test_records": len(test_records),
            "test_records_without_prompt": sum(1 for prompt, _ in test if not prompt),
            "base": base_metrics,
            "tuned": tuned_metrics,
            "delta": delta,
            "definitions": {
                "loss": "mean cross-entropy per response token (prompt tokens masked), EOS included",
                "perplexity": "exp(test_loss)", **DEFINITIONS},
            "decoding": {"strategy": "greedy", "max_new_tokens": max_new_tokens, "batch_size": batch_size,
                         "padding_side": "left", "seed": GENERATION_SEED},
        })


STAGE = EvaluateStage
