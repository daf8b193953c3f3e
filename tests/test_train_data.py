"""Training examples as memory-mapped Arrow files: the same examples, counts, batches and losses as the Python lists
they replace, and the processes of a launch as the report gives them."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import ACTIONS, TOPICS, alpaca
from support.reports import full_report
from support.training import train_params

from fttool.data.records import write_jsonl
from fttool.pipeline.params import build
from fttool.pipeline.stage import StageContext
from fttool.report.format import processes_text
from fttool.report.html import render_html
from fttool.report.model_card import render_model_card
from fttool.stages.train import TrainStage
from fttool.training.arrow_examples import examples_dir, load_splits
from fttool.training.backends.dp_sgd import DPSGDBackend, MappedUnits, collate_units
from fttool.training.backends.preference import PreferenceBackend, _rows
from fttool.training.backends.sft import SFTBackend, fit, load_model, prepared_data
from fttool.training.demo_model import build_demo_model
from fttool.training.examples import IGNORED_LABEL, tokenized_example, tokenized_examples, trained_token_share
from fttool.training.job import TrainJob
from fttool.training.modeling import training_tokenizer
from fttool.training.settings import TrainParams
from fttool.training.templates import CHAT_TEMPLATES

MAX_SEQ_LENGTH = 128


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    return str(build_demo_model(tmp_path_factory.mktemp("demo") / "base"))


def support_records(n: int, offset: int = 0) -> list[dict]:
    pairs = [(action, topic) for action in ACTIONS for topic in TOPICS][offset:offset + n]
    return [alpaca(f"How do I {action} my {topic}?", f"To {action} your {topic}, open the app and follow the steps.",
                   input_text=f"Account {i}" if i % 3 == 0 else "") for i, (action, topic) in enumerate(pairs)]


def mixed_records() -> list[dict]:
    """Alpaca records, a chat trained on both its assistant turns, and a prompt that fills the sequence (dropped)."""
    chat = {"id": "chat1", "source": "test", "format": "chat", "meta": {}, "messages": [
        {"role": "user", "content": "I want to close my card."}, {"role": "assistant", "content": "Which card?"},
        {"role": "user", "content": "The blue one."}, {"role": "assistant", "content": "Done, it is closed."}]}
    too_long = alpaca("word " * 200, "An answer that never fits.")
    return support_records(6) + [chat, too_long] + support_records(6, offset=6)


def job_for(tmp_path: Path, base: str, train: list[dict], validation: list[dict], objective: str = "sft",
            chat_template: str | None = CHAT_TEMPLATES["chatml"], **overrides) -> TrainJob:
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "validation.jsonl", validation)
    params = build(TrainParams, train_params(base, max_seq_length=MAX_SEQ_LENGTH, objective=objective, **overrides),
                   "train")
    return TrainJob(objective=objective, params=params, base_path=base, train_data=tmp_path / "train.jsonl",
                    validation_data=tmp_path / "validation.jsonl", model_dir=tmp_path / "model",
                    work_dir=tmp_path / "work", checkpoint_seal=tmp_path / "seals" / "checkpoints.json",
                    tracking_store=tmp_path / "mlruns", run_dir=tmp_path,
                    run_name="test", chat_template=chat_template)


def tokenizer_of(job: TrainJob):
    return training_tokenizer(job.base_path, job.params.model, job.chat_template)


def test_examples_are_mapped_rows_equal_to_the_records_tokenised_one_by_one(tmp_path, base):
    from datasets.table import MemoryMappedTable

    records = mixed_records()
    job = job_for(tmp_path, base, records, support_records(4, offset=20), max_samples=10)
    tokenizer = tokenizer_of(job)
    SFTBackend().prepare(job, tokenizer)
    splits = load_splits(job.work_dir)

    # The list path: every record tokenised on its own, up to max_samples, those with no label left dropped.
    write_jsonl(tmp_path / "first.jsonl", records[:10])
    expected, dropped = tokenized_examples(tmp_path / "first.jsonl", tokenizer, MAX_SEQ_LENGTH, train_on_inputs=False)
    assert splits.train.to_list() == expected and dropped == 1
    validation, _ = tokenized_examples(job.validation_data, tokenizer, MAX_SEQ_LENGTH, train_on_inputs=False)
    assert splits.validation.to_list() == validation
    counts = splits.counts["train"]
    assert (counts.rows, counts.dropped, counts.records_left_out) == (9, 1, len(records) - 10)
    assert (counts.trained_tokens, counts.total_tokens) == trained_token_share(expected)
    # Both assistant turns of the chat are trained on.
    trained = [tokenizer.decode([t for t in row["labels"] if t != IGNORED_LABEL]) for row in expected]
    assert any("Which card?" in text and "Done, it is closed." in text for text in trained)

    # Mapped from the stage's work directory, not read into memory.
    for split in (splits.train, splits.validation):
        assert isinstance(split.data, MemoryMappedTable)
        assert Path(split.cache_files[0]["filename"]).parent == examples_dir(job.work_dir)
    # Why TRL's own preparation (cutting to max_length, dropping rows without a label) is skipped: nothing to do.
    assert all(len(row["input_ids"]) <= MAX_SEQ_LENGTH and any(t != IGNORED_LABEL for t in row["labels"])
               for row in expected)


def test_a_second_preparation_replaces_the_first_whole(tmp_path, base):
    job = job_for(tmp_path, base, support_records(8), support_records(2, offset=8))
    tokenizer = tokenizer_of(job)
    SFTBackend().prepare(job, tokenizer)
    write_jsonl(job.train_data, support_records(3, offset=12))
    SFTBackend().prepare(job, tokenizer)
    splits = load_splits(job.work_dir)
    assert len(splits.train) == splits.counts["train"].rows == 3
    assert sorted(path.name for path in job.work_dir.iterdir()) == ["examples"]  # no temporary directory left


def test_nothing_to_train_on_fails_before_any_process_would_start(tmp_path, base):
    job = job_for(tmp_path, base, [alpaca("word " * 200, "Never fits.")], [])
    with pytest.raises(ValueError, match="no response token is left to train on"):
        SFTBackend().prepare(job, tokenizer_of(job))


def source_units(records: list[dict], tokenizer) -> list[list[dict]]:
    """Records grouped by the source record they derive from (following parent_id), in order of first appearance,
    as lists of their examples (independently of fttool's grouping)."""
    by_id = {record["id"]: record for record in records}
    units: dict[str, list[dict]] = {}
    for record in records:
        root = record
        while root.get("parent_id"):
            root = by_id[root["parent_id"]]
        example = tokenized_example(tokenizer, record, MAX_SEQ_LENGTH, train_on_inputs=False)
        if example is not None:
            units.setdefault(root["id"], []).append(example)
    return list(units.values())


def test_dp_units_read_from_the_mapped_split_batch_as_the_lists_did(tmp_path, base):
    import torch

    sources = support_records(8)
    # Augmented copies (one of a copy) interleaved with other records; a too-long one is dropped.
    copies = [{**sources[1], "id": "copy1", "parent_id": sources[1]["id"], "output": "Use the app."},
              {**sources[1], "id": "copy1b", "parent_id": "copy1", "output": "Open the app."},
              {**sources[4], "id": "copy4", "parent_id": sources[4]["id"], "output": "In the app."}]
    records = sources[:3] + [copies[0], alpaca("word " * 200, "Never fits.")] + sources[3:6] + copies[1:] + sources[6:]
    job = job_for(tmp_path, base, records, sources[:2] + copies[:1], chat_template=None)
    tokenizer = tokenizer_of(job)
    DPSGDBackend().prepare(job, tokenizer)
    splits = load_splits(job.work_dir)
    units, validation = MappedUnits.of(splits.train), MappedUnits.of(splits.validation)

    expected = source_units(records, tokenizer)
    assert [list(unit) for unit in units] == expected
    assert [len(unit) for unit in expected] == [1, 3, 1, 1, 2, 1, 1, 1]
    assert [list(unit) for unit in validation] == source_units(sources[:2] + copies[:1], tokenizer)
    # The batches opacus' Poisson-sampled unit numbers become are the same tensors.
    batch = [(torch.tensor(4),), (torch.tensor(1),), (torch.tensor(7),)]
    pad = tokenizer.pad_token_id
    mapped, listed = collate_units(units, pad)(batch), collate_units(expected, pad)(batch)
    assert mapped.keys() == listed.keys()
    assert all(torch.equal(mapped[key], listed[key]) for key in mapped)
    assert mapped["unit_of_row"].tolist() == [0, 0, 1, 1, 1, 2]  # unit 4 has 2 examples, unit 1 has 3


def test_preference_rows_are_mapped_as_trl_reads_them(tmp_path, base):
    pairs = [{"id": f"p{i}", "source": "test", "format": "preference", "meta": {},
              "messages": [{"role": "user", "content": f"How do I close account {i}?"}],
              "chosen": f"Open Settings, account {i}, Close.", "rejected": "No."} for i in range(6)]
    job = job_for(tmp_path, base, pairs, pairs[:2], objective="dpo", max_samples=5,
                  preference={"beta": 0.1, "loss_type": "sigmoid", "label_smoothing": 0.0,
                              "precompute_ref_log_probs": False, "sync_ref_model": False,
                              "ref_model_mixup_alpha": 0.6, "ref_model_sync_steps": 512, "desirable_weight": 1.0,
                              "undesirable_weight": 1.0})
    tokenizer = tokenizer_of(job)
    PreferenceBackend().prepare(job, tokenizer)
    splits = load_splits(job.work_dir)
    assert splits.train.to_list() == [row for pair in pairs[:5] for row in _rows(pair, tokenizer, "dpo")]
    assert splits.counts["train"].records_left_out == 1 and len(splits.validation) == 2


@pytest.mark.slow
def test_training_on_the_mapped_split_has_the_losses_of_training_on_the_lists(tmp_path, base):
    import datasets
    import torch

    job = job_for(tmp_path, base, mixed_records(), support_records(6, offset=20), max_steps=6, seed=11)
    tokenizer = tokenizer_of(job)
    SFTBackend().prepare(job, tokenizer)
    mapped = prepared_data(job, tokenizer)
    listed = dataclasses.replace(mapped, **{split: datasets.Dataset.from_list(
        tokenized_examples(path, tokenizer, MAX_SEQ_LENGTH, train_on_inputs=False)[0])
        for split, path in (("train", job.train_data), ("validation", job.validation_data))})

    histories = []
    for name, data in (("mapped", mapped), ("listed", listed)):
        run_job = dataclasses.replace(job, work_dir=tmp_path / name)  # its own checkpoints
        torch.manual_seed(job.params.seed)
        run = fit(run_job, tokenizer, load_model(run_job), data)
        histories.append([{k: v for k, v in entry.items() if "loss" in k or k == "step"}
                          for entry in run.trainer.state.log_history if "loss" in entry or "eval_loss" in entry])
    assert histories[0] == histories[1]
    assert any("eval_loss" in entry for entry in histories[0]) and len(histories[0]) > 3


@pytest.mark.slow
def test_the_report_names_each_launched_process_by_machine_rank_and_device(tmp_path, base):
    compute = {"num_processes": 2, "num_machines": 1, "machine_rank": 0, "main_process_ip": None,
               "main_process_port": None, "strategy": "ddp", "deepspeed": None, "threads": None}
    run_dir = tmp_path / "run"
    job = job_for(run_dir, base, support_records(16), support_records(4, offset=16), compute=compute, max_steps=2)
    context = StageContext(params=job.params, inputs={"train": job.train_data, "validation": job.validation_data},
                           outputs={"model": job.model_dir, "tracking": job.tracking_store}, recipe_dir=tmp_path,
                           work_dir=run_dir / "work" / "train", run_dir=run_dir)
    result = TrainStage().run(context)
    launch = result.summary["launch"]
    # What each process reported: torch names a gloo process's CPU device with an index (cpu:N).
    assert [(p["rank"], p["machine"], p["local_rank"]) for p in launch["ranks"]] == [(0, 0, 0), (1, 0, 1)]
    assert all(p["device"].startswith("cpu") for p in launch["ranks"]), launch["ranks"]
    assert result.summary["train_examples"] == 16


def test_processes_are_written_by_machine_with_their_ranks():
    report = full_report()
    training = report["training"]
    training.pop("launch", None)
    assert processes_text(training) == "one (the fttool process, not launched)"
    assert "one (the fttool process, not launched)" in render_model_card(report)
    training["launch"] = {"num_processes": 4, "machines": 2, "processes_per_machine": 2, "strategy": "ddp",
                          "config_file": "work/train/launch/accelerate_config.yaml", "config": {}, "command": [],
                          "ranks": [{"rank": rank, "machine": rank // 2, "local_rank": rank % 2,
                                     "device": f"cuda:{rank % 2}"} for rank in range(4)]}
    ranks = "machine 0: ranks 0, 1 (cuda:0, cuda:1); machine 1: ranks 2, 3 (cuda:0, cuda:1)"
    assert processes_text(training) == ranks
    assert ranks in render_html(report) and ranks in render_model_card(report)
    assert "4 on 2 machines, 2 each (ddp, accelerate launch)" in render_html(report)
    training["launch"].pop("ranks")  # a report from before ranks were recorded
    assert processes_text(training) == "4 (accelerate launch)"
