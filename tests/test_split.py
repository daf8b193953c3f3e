import pytest

from conftest import alpaca
from fttool.records import read_jsonl
from fttool.stages.split import SPLITS, split_sizes

RATIOS = {"train": 0.7, "validation": 0.15, "test": 0.15}


def records(n: int) -> list[dict]:
    return [alpaca(f"Question {i}", f"Answer {i}") for i in range(n)]


def split(run_stage, items, seed=42, **ratios):
    result, outputs = run_stage("split", {**RATIOS, **ratios, "seed": seed}, {"records": items})
    return result, {name: [r["id"] for r in read_jsonl(outputs[name])] for name in SPLITS}


def test_exact_counts_no_overlap_and_nothing_lost(run_stage):
    items = records(100)
    result, ids = split(run_stage, items)
    assert {name: len(ids[name]) for name in SPLITS} == {"train": 70, "validation": 15, "test": 15}
    assert result.summary == {"seed": 42, "ratios": RATIOS, "counts": {"train": 70, "validation": 15, "test": 15},
                              "notes": []}
    assert sorted(ids["train"] + ids["validation"] + ids["test"]) == sorted(r["id"] for r in items)
    assert not set(ids["train"]) & set(ids["validation"])
    assert not set(ids["train"]) & set(ids["test"])
    assert not set(ids["validation"]) & set(ids["test"])


def test_each_split_keeps_file_order(run_stage):
    items = records(50)
    position = {r["id"]: i for i, r in enumerate(items)}
    _, ids = split(run_stage, items)
    for name in SPLITS:
        assert [position[i] for i in ids[name]] == sorted(position[i] for i in ids[name])


def test_same_seed_same_split_whatever_the_input_order(run_stage):
    items = records(60)
    _, first = split(run_stage, items, seed=7)
    _, again = split(run_stage, items, seed=7)
    _, reversed_input = split(run_stage, items[::-1], seed=7)
    assert first == again
    assert {name: set(first[name]) for name in SPLITS} == {name: set(reversed_input[name]) for name in SPLITS}


def test_another_seed_gives_another_split(run_stage):
    items = records(60)
    _, first = split(run_stage, items, seed=7)
    _, other = split(run_stage, items, seed=8)
    assert set(first["test"]) != set(other["test"])
    assert {name: len(first[name]) for name in SPLITS} == {name: len(other[name]) for name in SPLITS}


@pytest.mark.parametrize("n", range(0, 41))
def test_sizes_always_sum_to_n(n):
    sizes = split_sizes(n, RATIOS)
    assert sum(sizes.values()) == n and min(sizes.values()) >= 0
    assert abs(sizes["validation"] - n * 0.15) <= 0.5 and abs(sizes["test"] - n * 0.15) <= 0.5


def test_extreme_ratios_never_take_more_than_n():
    assert split_sizes(3, {"train": 0.01, "validation": 0.5, "test": 0.49}) == {"train": 0, "validation": 2, "test": 1}


def test_tiny_input_says_which_splits_are_empty(run_stage):
    result, _ = split(run_stage, records(3))
    assert result.summary["counts"] == {"train": 3, "validation": 0, "test": 0}
    assert result.summary["notes"] == [
        "validation ratio is 0.15 but it got no records: only 3 records to split",
        "test ratio is 0.15 but it got no records: only 3 records to split"]


def test_a_zero_ratio_is_not_a_note(run_stage):
    result, ids = split(run_stage, records(10), validation=0.3, test=0.0)
    assert result.summary["counts"] == {"train": 7, "validation": 3, "test": 0}
    assert result.summary["notes"] == [] and ids["test"] == []


def test_records_sharing_an_id_stay_together(run_stage):
    items = records(20)
    shared = items[12]["id"]
    items.insert(5, dict(items[12]))
    _, ids = split(run_stage, items)
    [holder] = [name for name in SPLITS if shared in ids[name]]
    assert ids[holder].count(shared) == 2
    assert sum(len(ids[name]) for name in SPLITS) == 21
