"""Per-record cross-entropy of a causal LM on response tokens, the prompt masked exactly as in training.

Evaluation, the canary exposure check and DP training's validation loss all measure loss here.
"""
from __future__ import annotations

from fttool.training.examples import IGNORED_LABEL, prompt_and_sequence_ids, response_start


def loss_example(tokenizer, record: dict, limit: int | None) -> tuple[list[int], list[int]]:
    """(input ids, labels) exactly as training builds them (chat template or alpaca layout, EOS after the
    response), with every prompt token masked with IGNORED_LABEL."""
    prompt_ids, ids = prompt_and_sequence_ids(tokenizer, record)
    start = response_start(prompt_ids, ids)
    labels = [IGNORED_LABEL] * start + ids[start:]
    return ids[:limit], labels[:limit]


def labelled_token_losses(model, pad_id: int, examples: list[tuple[list[int], list[int]]],
                          batch_size: int) -> list[tuple[float, int]]:
    """(summed cross-entropy in nats, token count) over the labelled tokens of each (input ids, labels) example."""
    import torch
    import torch.nn.functional as F

    losses: list[tuple[float, int]] = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id)
        labels = torch.full((len(batch), width), IGNORED_LABEL)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, row_labels) in enumerate(batch):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            labels[row, :len(ids)] = torch.tensor(row_labels)
            attention[row, :len(ids)] = 1
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device)).logits
        # Position t predicts token t + 1.
        targets = labels[:, 1:].to(logits.device)
        token_losses = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORED_LABEL,
                                       reduction="none")
        losses += zip(token_losses.sum(dim=1).tolist(), (targets != IGNORED_LABEL).sum(dim=1).tolist())
    return losses


def response_token_losses(model, tokenizer, records: list[dict], batch_size: int,
                          limit: int | None) -> list[tuple[float, int]]:
    """(summed cross-entropy in nats, token count) of each record's response tokens, prompt masked."""
    return labelled_token_losses(model, tokenizer.pad_token_id,
                                 [loss_example(tokenizer, record, limit) for record in records], batch_size)


def mean_token_loss(losses: list[tuple[float, int]]) -> float | None:
    """Mean cross-entropy over every counted token (not a mean of per-example means); None with no token."""
    count = sum(tokens for _, tokens in losses)
    return sum(total for total, _ in losses) / count if count else None


def response_loss(model, tokenizer, records: list[dict], batch_size: int, limit: int | None) -> float | None:
    """Mean cross-entropy over every response token of `records`."""
    return mean_token_loss(response_token_losses(model, tokenizer, records, batch_size, limit))
