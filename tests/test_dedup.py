import io
import random
import re
import time
import unicodedata

import numpy as np
import pytest
from conftest import alpaca

from fttool.data import dedup as dedup_module
from fttool.data import embeddings
from fttool.data.records import read_jsonl, write_jsonl
from fttool.data.settings import DedupParams
from fttool.pipeline.params import build
from fttool.pipeline.progress import progress_line, progress_lines
from fttool.pipeline.stage import StageContext
from fttool.stages.dedup import DedupStage

IN_PROCESS = {"engine": "local", "workers": 1, "ray": {"address": "", "num_cpus": None}}
ALL_ON = {"exact": True, "near": True, "near_threshold": 0.8, "semantic": False, "semantic_threshold": 0.95,
          "compute": IN_PROCESS}

FORTY_WORDS = ("Our branch in the old town opens at nine every weekday and closes at five except on Fridays when "
               "it closes at three so please plan your visit early and bring your card and a photo id with you today")
ONE_WORD_CHANGED = FORTY_WORDS.replace("Fridays", "Thursdays")


def chat(record_id: str, *turns: tuple[str, str]) -> dict:
    return {"id": record_id, "source": "test", "format": "chat",
            "messages": [{"role": role, "content": content} for role, content in turns], "meta": {}}


def dedup(run_stage, records, **params):
    result, outputs = run_stage("dedup", {**ALL_ON, **params}, {"records": records})
    return result, list(read_jsonl(outputs["records"]))


def test_forty_words_fixture_is_forty_words():
    assert len(FORTY_WORDS.split()) == 40 and FORTY_WORDS != ONE_WORD_CHANGED


def test_exact_and_case_or_whitespace_duplicates_keep_the_first(run_stage):
    first = alpaca("How do I reset my PIN?", "Use the app.", region="north")
    same_line_again = dict(first)
    shouting = alpaca("HOW do I   reset my\nPIN?", "use THE app.")
    other = alpaca("Opening hours?", "Nine to five.")
    result, kept = dedup(run_stage, [first, same_line_again, other, shouting], near=False)
    assert [r["id"] for r in kept] == [first["id"], other["id"]]
    assert kept[0]["meta"] == {"region": "north"}
    assert result.removed == {"exact_duplicate": 2}
    assert result.summary["rules"] == {"exact_duplicate": {"removed": 2, "example_ids": [first["id"], shouting["id"]]}}


def test_same_words_in_different_fields_or_roles_are_not_duplicates(run_stage):
    records = [alpaca("a b", "c"), alpaca("a", "b c"),
               chat("c1", ("user", "hi"), ("assistant", "hello")), chat("c2", ("system", "hi"), ("assistant", "hello"))]
    result, kept = dedup(run_stage, records, near=False)
    assert len(kept) == 4 and result.removed == {"exact_duplicate": 0}


def test_near_duplicate_with_one_word_changed(run_stage):
    original = alpaca("When are you open?", FORTY_WORDS)
    edited = alpaca("When are you open?", ONE_WORD_CHANGED)
    unrelated = alpaca("How do I block a lost card?", "Open the app, choose Cards, then Block card and confirm it.")
    result, kept = dedup(run_stage, [original, edited, unrelated])
    assert [r["id"] for r in kept] == [original["id"], unrelated["id"]]
    assert result.removed == {"exact_duplicate": 0, "near_duplicate": 1}
    assert result.summary["rules"]["near_duplicate"] == {"removed": 1, "example_ids": [edited["id"]]}

    result, kept = dedup(run_stage, [original, edited, unrelated], near=False)
    assert len(kept) == 3 and result.removed == {"exact_duplicate": 0}
    assert set(result.summary["rules"]) == {"exact_duplicate"}


@pytest.mark.parametrize("threshold", [0.99, 1.0])
def test_a_strict_threshold_keeps_the_edited_copy_and_drops_the_identical_one(run_stage, threshold):
    original = alpaca("When are you open?", FORTY_WORDS)
    records = [original, alpaca("When are you open?", ONE_WORD_CHANGED), dict(original)]
    result, kept = dedup(run_stage, records, exact=False, near_threshold=threshold)
    assert [r["output"] for r in kept] == [FORTY_WORDS, ONE_WORD_CHANGED]
    assert result.removed == {"near_duplicate": 1}


def test_every_one_word_edit_is_found_among_many_texts(run_stage):
    rng = random.Random(0)
    vocabulary = [f"word{i}" for i in range(500)]
    texts = [[rng.choice(vocabulary) for _ in range(40)] for _ in range(30)]
    originals = [alpaca(f"Question {i}", " ".join(words)) for i, words in enumerate(texts)]
    edits = [alpaca(f"Question {i}", " ".join(words[:20] + ["changed"] + words[21:])) for i, words in enumerate(texts)]
    result, kept = dedup(run_stage, originals + edits, near_threshold=0.7)
    assert [r["id"] for r in kept] == [r["id"] for r in originals]
    assert result.removed == {"exact_duplicate": 0, "near_duplicate": 30}


def test_cleaning_is_counted_per_rule_and_written(run_stage):
    decomposed = alpaca("Cafe\u0301 hours?", "Open daily.")
    with_control = alpaca("Fees?", "None\x00 at\r\nall.")
    with_blanks = alpaca("Rates?  ", "Three\t\tpercent.   \nFixed.")
    code = alpaca("Show a loop", "for x in y:\n    print(x)")
    clean = alpaca("Hours?", "Nine to five.")
    result, kept = dedup(run_stage, [decomposed, with_control, with_blanks, code, clean])
    assert result.summary["normalised"] == {"nfc": 1, "control_chars": 1, "whitespace": 1}
    by_id = {r["id"]: r for r in kept}
    assert by_id[decomposed["id"]]["instruction"] == unicodedata.normalize("NFC", "Caf\u00e9 hours?")
    assert by_id[with_control["id"]]["output"] == "None at\nall."
    assert (by_id[with_blanks["id"]]["instruction"], by_id[with_blanks["id"]]["output"]) == (
        "Rates?", "Three percent.\nFixed.")
    assert by_id[code["id"]]["output"] == "for x in y:\n    print(x)"
    assert [r["id"] for r in kept] == [r["id"] for r in (decomposed, with_control, with_blanks, code, clean)]


def test_records_that_differ_only_after_cleaning_are_exact_duplicates(run_stage):
    composed = alpaca("Caf\u00e9?", "Yes.")
    decomposed = alpaca("Cafe\u0301?", "Yes.\x07")
    result, kept = dedup(run_stage, [composed, decomposed], near=False)
    assert [r["id"] for r in kept] == [composed["id"]]
    assert result.summary["rules"]["exact_duplicate"]["example_ids"] == [decomposed["id"]]


def test_example_ids_are_capped_at_five(run_stage):
    original = alpaca("Q", "A")
    copies = [alpaca("q", "A" + " " * n) for n in range(1, 9)]  # trailing spaces: exact duplicates after cleaning
    result, kept = dedup(run_stage, [original, *copies], near=False)
    assert len(kept) == 1 and result.removed == {"exact_duplicate": 8}
    assert result.summary["rules"]["exact_duplicate"]["example_ids"] == [c["id"] for c in copies[:5]]


# -- semantic duplicates, on the real all-MiniLM-L6-v2 encoder --------------------------------------------

RESET = alpaca("How do I reset my password?", "Use the Forgot password link on the sign-in page.")
RESET_REWORDED = alpaca("How can I reset my password?", "Click 'Forgot password' when you sign in.")
UNRELATED = [alpaca("What are your opening hours on Saturday?", "We open from nine to one."),
             alpaca("How do I block a lost card?", "Open the app, choose Cards, then Block card."),
             alpaca("How do I reset my PIN?", "Use the Forgot password link on the sign-in page."),
             alpaca("How do I change my password?", "Go to Settings, then Security.")]


def test_embeddings_are_unit_length_and_keep_the_input_order():
    texts = ["A much longer sentence about the opening hours of the branch in the old town.", "Short one."]
    together = embeddings.embed(texts)
    assert together.shape == (2, 384) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.vstack([embeddings.embed([text]) for text in texts])
    assert np.allclose(together, alone, atol=1e-5)  # batching sorts by length, then restores the order


def test_a_reworded_question_is_a_semantic_duplicate_at_0_9(run_stage):
    records = [RESET, *UNRELATED[:2], RESET_REWORDED, *UNRELATED[2:]]
    result, kept = dedup(run_stage, records, semantic=True, semantic_threshold=0.9)
    assert [r["id"] for r in kept] == [r["id"] for r in (RESET, *UNRELATED)]
    assert result.removed == {"exact_duplicate": 0, "near_duplicate": 0, "semantic_duplicate": 1}
    assert result.summary["rules"]["semantic_duplicate"] == {
        "removed": 1, "example_ids": [RESET_REWORDED["id"]], "model": embeddings.MODEL_NAME}


def test_the_default_threshold_keeps_a_looser_paraphrase(run_stage):
    result, kept = dedup(run_stage, [RESET, RESET_REWORDED, *UNRELATED], semantic=True)  # cosine about 0.93
    assert len(kept) == 6 and result.removed["semantic_duplicate"] == 0


def test_batches_and_blocks_of_kept_embeddings_give_the_same_answer(run_stage, monkeypatch):
    reset_please = alpaca("How can I reset my password, please?", "Use the Forgot password link.")
    records = [RESET, reset_please, *UNRELATED[:3], RESET_REWORDED, UNRELATED[3]]
    expected, kept = dedup(run_stage, records, semantic=True, semantic_threshold=0.9)
    assert [r["id"] for r in kept] == [r["id"] for r in (RESET, *UNRELATED)]
    assert expected.summary["rules"]["semantic_duplicate"]["example_ids"] == [reset_please["id"], RESET_REWORDED["id"]]
    # Two records a batch and three kept embeddings a block: a duplicate is found within a batch, and
    # against an earlier, full block.
    monkeypatch.setattr(dedup_module, "SEMANTIC_BATCH", 2)
    monkeypatch.setattr(dedup_module, "KEPT_BLOCK_ROWS", 3)
    result, kept_in_batches = dedup(run_stage, records, semantic=True, semantic_threshold=0.9)
    assert kept_in_batches == kept and result.summary == expected.summary



@pytest.mark.slow
def test_worker_processes_embed_and_keep_the_same_records(run_stage, monkeypatch):
    """The engine's workers embed each batch; the stage's process compares them in input order."""
    reset_please = alpaca("How can I reset my password, please?", "Use the Forgot password link.")
    records = [RESET, reset_please, *UNRELATED[:3], RESET_REWORDED, UNRELATED[3]]
    expected, kept = dedup(run_stage, records, semantic=True, semantic_threshold=0.9)
    monkeypatch.setattr(dedup_module, "RECORDS_PER_BATCH", 2)  # four batches, so the pool computes them
    result, kept_by_workers = dedup(run_stage, records, semantic=True, semantic_threshold=0.9,
                                    compute={**IN_PROCESS, "workers": 2})
    assert kept_by_workers == kept and result.summary == expected.summary
    assert expected.removed["semantic_duplicate"] == 2

def test_semantic_dedup_puts_the_encoder_in_the_fingerprint():
    params = {**ALL_ON, "semantic": True}
    assert DedupStage.external_inputs(build(DedupParams, params)) == [str(embeddings.model_dir())]
    assert (embeddings.model_dir() / "model.safetensors").is_file()
    assert DedupStage.external_inputs(build(DedupParams, ALL_ON)) == []


# -- progress in logs ------------------------------------------------------------------------------------------
def test_progress_lines_come_every_interval_with_rate_and_time_left():
    ticks = iter(range(0, 1000, 10))  # each item takes ten seconds
    stream = io.StringIO()
    items = list(progress_lines(range(9), "dedup", 9, 30, stream, clock=lambda: next(ticks)))
    assert items == list(range(9))
    assert stream.getvalue().splitlines() == [
        "dedup: 3 of 9 records, 0.1 records/s, about 60 s left",
        "dedup: 6 of 9 records, 0.1 records/s, about 30 s left",
        "dedup: 9 of 9 records, 0.1 records/s, about 0 s left"]
    assert progress_line("ingest a.jsonl", 1200, 30, None) == (
        "ingest a.jsonl: 1,200 records, 40.0 records/s, time left unknown")


def test_a_step_whose_first_record_takes_long_still_writes_a_line_every_interval():
    """The PII stage hands records on a chunk at a time: nothing arrived for minutes, then 'pii train: 1 records,
    0.0 records/s'. A line comes every interval while the consumer waits, saying nothing is finished yet."""
    def slow_first():
        time.sleep(0.5)
        yield from ("a", "b")

    stream = io.StringIO()
    assert list(progress_lines(slow_first(), "pii train", 2, 0.1, stream)) == ["a", "b"]
    waiting = [line for line in stream.getvalue().splitlines() if "no record finished yet" in line]
    assert len(waiting) >= 2, stream.getvalue()
    assert re.fullmatch(r"pii train: no record finished yet after \d+ s \(of 2 records\)", waiting[0])
    assert not any("records/s" in line and line.startswith("pii train: 0 ") for line in stream.getvalue().splitlines())


def test_a_stage_writes_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys):
    records = [alpaca(f"Question {i}", f"Answer {i}") for i in range(5)]
    write_jsonl(tmp_path / "in.jsonl", records)
    ctx = StageContext(params=build(DedupParams, ALL_ON), inputs={"records": tmp_path / "in.jsonl"},
                       outputs={"records": tmp_path / "out.jsonl"}, recipe_dir=tmp_path, work_dir=tmp_path,
                       progress_interval_s=0)
    DedupStage().run(ctx)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [f"dedup: {i} of 5 records" for i in range(1, 6)]
