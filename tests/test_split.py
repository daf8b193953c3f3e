import json
import random
import re
from collections import Counter

import pytest
from conftest import alpaca
from support.data import split_params

from fttool.data.records import SPLITS, read_jsonl, write_jsonl
from fttool.data.settings import SplitParams
from fttool.data.split import LeakageError, _find_leaks, assign, assign_groups, split_sizes
from fttool.fairness.groups import MISSING_GROUP as MISSING
from fttool.pipeline.params import build
from fttool.pipeline.stage import StageContext
from fttool.recipe import RecipeInvalid, compile_recipe
from fttool.stages.split import SplitStage

RATIOS = {"train": 0.7, "validation": 0.15, "test": 0.15}
LEAK_DEFAULTS = {"on_leak": "move", "leak_threshold": 0.8}
NO_LEAKS = {"exact_pairs": 0, "near_pairs": 0, "moved": 0, "example_ids": [], "action": "move"}


def records(n: int) -> list[dict]:
    return [alpaca(f"Question {i}", f"Answer {i}") for i in range(n)]


def split(run_stage, items, seed=42, **params):
    result, outputs = run_stage("split", split_params(**{**RATIOS, **LEAK_DEFAULTS, **params, "seed": seed}),
                                {"records": items})
    return result, {name: [r["id"] for r in read_jsonl(outputs[name])] for name in SPLITS}


def test_exact_counts_no_overlap_and_nothing_lost(run_stage):
    items = records(100)
    result, ids = split(run_stage, items)
    assert {name: len(ids[name]) for name in SPLITS} == {"train": 70, "validation": 15, "test": 15}
    assert result.summary == {"seed": 42, "ratios": RATIOS, "counts": {"train": 70, "validation": 15, "test": 15},
                              "notes": [], "stratify": None, "group_by": None, "leakage": NO_LEAKS}
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


# -- stratified and group-aware splits ----------------------------------------------------------------

def regional(n: int, region: str | None) -> list[dict]:
    meta = {"region": region} if region else {}
    return [alpaca(f"{region} question {i}", f"Answer {i}", **meta) for i in range(n)]


def test_each_stratum_is_split_by_the_ratios(run_stage):
    strata = {"north": 60, "south": 40, "east": 20}
    items = [r for region, n in strata.items() for r in regional(n, region)] + regional(10, None)
    random.Random(1).shuffle(items)
    region_of = {r["id"]: r["meta"].get("region", MISSING) for r in items}
    result, ids = split(run_stage, items, stratify="region")

    expected = {region: split_sizes(n, RATIOS) for region, n in {**strata, MISSING: 10}.items()}
    got = {region: {name: sum(region_of[i] == region for i in ids[name]) for name in SPLITS} for region in expected}
    assert got == expected  # e.g. north 42/9/9, south 28/6/6, east 14/3/3, (missing) 7/2/1
    assert result.summary["stratify"] == {"field": "region", "strata": dict(sorted(expected.items())), "missing": 10}
    assert result.summary["counts"] == {name: sum(sizes[name] for sizes in expected.values()) for name in SPLITS}
    assert result.summary["group_by"] is None and result.summary["leakage"] == NO_LEAKS


def test_stratified_split_does_not_depend_on_input_order(run_stage):
    items = regional(30, "north") + regional(20, "south")
    _, first = split(run_stage, items, stratify="region")
    _, reversed_input = split(run_stage, items[::-1], stratify="region")
    assert {name: set(first[name]) for name in SPLITS} == {name: set(reversed_input[name]) for name in SPLITS}


def customers(n_groups: int, seed: int = 0) -> list[dict]:
    """Records of n_groups customers with 1 to 8 records each, interleaved."""
    rng = random.Random(seed)
    items = [alpaca(f"Customer {c} question {i}", f"Answer {c}.{i}", customer_id=f"c{c}")
             for c in range(n_groups) for i in range(rng.randint(1, 8))]
    rng.shuffle(items)
    return items


def test_a_group_never_lands_on_two_sides(run_stage):
    items = customers(60) + regional(5, None)  # five records without customer_id form one more group
    group_of = {r["id"]: r["meta"].get("customer_id", MISSING) for r in items}
    result, ids = split(run_stage, items, group_by="customer_id")

    sides = {}
    for name in SPLITS:
        for record_id in ids[name]:
            sides.setdefault(group_of[record_id], set()).add(name)
    assert all(len(names) == 1 for names in sides.values())
    assert sorted(i for name in SPLITS for i in ids[name]) == sorted(group_of)
    groups = {name: len({group_of[i] for i in ids[name]}) for name in SPLITS}
    assert result.summary["group_by"] == {"field": "customer_id", "groups": groups, "missing": 5}
    assert sum(groups.values()) == 61 and min(groups.values()) > 0
    # Whole groups of at most 8 records cannot hit the ratios exactly, but they come close.
    for name, size in split_sizes(len(items), RATIOS).items():
        assert abs(result.summary["counts"][name] - size) <= 8
    assert result.summary["stratify"] is None


def test_group_split_is_seeded_and_does_not_depend_on_input_order(run_stage):
    items = customers(40)
    _, first = split(run_stage, items, group_by="customer_id")
    _, reversed_input = split(run_stage, items[::-1], group_by="customer_id")
    _, other_seed = split(run_stage, items, seed=43, group_by="customer_id")
    assert {name: set(first[name]) for name in SPLITS} == {name: set(reversed_input[name]) for name in SPLITS}
    assert set(first["test"]) != set(other_seed["test"])


def test_assign_groups_puts_a_large_group_where_there_is_room():
    sizes = {"big": 50, **{f"g{i}": 1 for i in range(50)}}
    assignment = assign_groups(sizes, RATIOS, seed=0)
    assert assignment["big"] == "train"
    counts = {name: sum(n for g, n in sizes.items() if assignment[g] == name) for name in SPLITS}
    assert counts == {"train": 70, "validation": 15, "test": 15}


def test_stratify_and_group_by_together_is_a_compile_error(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: both\ndata:\n  sources:\n    - {path: d.jsonl, format: alpaca}\n"
                      "  split:\n    stratify: region\n    group_by: customer_id\n")
    with pytest.raises(RecipeInvalid) as info:
        compile_recipe(recipe)
    [error] = [str(e) for e in info.value.errors]
    assert error.startswith(f"{recipe}:7:5: use either 'stratify' or 'group_by', not both")


# -- leakage across splits ------------------------------------------------------------------------------

def forty_random_words(rng: random.Random) -> list[str]:
    return [f"word{rng.randrange(1000)}" for _ in range(40)]


def planted_leaks(seed: int = 5) -> tuple[list[dict], list[tuple[str, str]], list[tuple[str, str]]]:
    """100 unrelated records plus 15 exact and 15 near-duplicate pairs: (records, exact pairs, near pairs)."""
    rng = random.Random(seed)
    items = records(100)
    exact, near = [], []
    for i in range(15):
        text = " ".join(forty_random_words(rng))
        original, copy = alpaca(f"Exact {i}", text), alpaca(f"EXACT  {i}", text.upper())  # same after casefolding
        words = forty_random_words(rng)
        edited = alpaca(f"Near {i}", " ".join(words[:-1] + ["changed"]))  # one word changed: Jaccard 37/39
        items += [original, copy, alpaca(f"Near {i}", " ".join(words)), edited]
        exact.append((original["id"], copy["id"]))
        near.append((items[-2]["id"], edited["id"]))
    rng.shuffle(items)
    return items, exact, near


def crossing(pairs, assignment) -> list[tuple[str, str]]:
    return [(a, b) for a, b in pairs if assignment[a] != assignment[b]]


def test_planted_duplicates_across_splits_are_moved_into_train(run_stage):
    items, exact, near = planted_leaks()
    before = assign({r["id"] for r in items}, RATIOS, 42)  # the split without the leakage check
    exact_crossing, near_crossing = crossing(exact, before), crossing(near, before)
    assert exact_crossing and near_crossing  # the fixture does plant leaks
    must_move = {i for pair in exact_crossing + near_crossing for i in pair if before[i] != "train"}

    result, ids = split(run_stage, items)
    after = {i: name for name in SPLITS for i in ids[name]}
    leakage = result.summary["leakage"]
    assert leakage["exact_pairs"] == len(exact_crossing) and leakage["near_pairs"] == len(near_crossing)
    assert leakage["moved"] == len(must_move) and leakage["action"] == "move"
    assert set(leakage["example_ids"]) <= must_move and len(leakage["example_ids"]) == 5
    assert not crossing(exact + near, after)
    assert all(after[i] == "train" for i in must_move)
    assert all(after[i] == before[i] for i in before if i not in must_move)
    assert sorted(after) == sorted(before) and len(items) == sum(result.summary["counts"].values())
    assert result.summary["notes"] == [f"{len(must_move)} held-out records moved to train because they duplicate "
                                       "records in another split; validation and test are smaller than their ratios"]


def test_fail_names_counts_and_ids_but_never_text(run_stage):
    items, exact, near = planted_leaks()
    before = assign({r["id"] for r in items}, RATIOS, 42)
    with pytest.raises(LeakageError) as info:
        split(run_stage, items, on_leak="fail")
    message = str(info.value)
    assert (f"{len(crossing(exact, before))} exact and {len(crossing(near, before))} near-duplicate pairs"
            in message)
    planted_ids = {i for pair in exact + near for i in pair}
    named = re.findall(r"\br[0-9a-f]{16}\b", message)
    assert len(named) == 10 and set(named) <= planted_ids  # five example pairs
    assert "word" not in message and "Near" not in message and "Exact" not in message


def test_fail_without_leaks_writes_the_split(run_stage):
    result, ids = split(run_stage, records(50), on_leak="fail")
    assert result.summary["leakage"] == {**NO_LEAKS, "action": "fail"}
    assert sum(len(ids[name]) for name in SPLITS) == 50


def test_a_leaking_group_moves_whole(run_stage):
    rng = random.Random(3)
    items = customers(40)
    messages = {f"c{c}": forty_random_words(rng) for c in range(40)}
    sizes = Counter(r["meta"]["customer_id"] for r in items)
    before = assign_groups(sizes + Counter(list(messages)), RATIOS, 42)  # each customer also sends one long message
    trained = next(g for g in sorted(before) if before[g] == "train")
    held_out = next(g for g in sorted(before) if before[g] != "train")
    messages[held_out] = messages[trained][:-1] + ["changed"]  # a near duplicate of a train customer's message
    items += [alpaca(f"Message from {g}", " ".join(words), customer_id=g) for g, words in messages.items()]

    result, ids = split(run_stage, items, group_by="customer_id")
    group_of = {r["id"]: r["meta"]["customer_id"] for r in items}
    after = {group_of[i]: name for name in SPLITS for i in ids[name]}
    assert after == {**before, held_out: "train"}
    leakage = result.summary["leakage"]
    assert (leakage["exact_pairs"], leakage["near_pairs"], leakage["moved"]) == (0, 1, sizes[held_out] + 1)
    assert result.summary["group_by"]["groups"]["train"] == sum(s == "train" for s in before.values()) + 1


def test_a_duplicate_pair_across_validation_and_test_both_move(tmp_path):
    # Moving only one half would leave the other leaking against train.
    text = " ".join(forty_random_words(random.Random(9)))
    a, b = alpaca("Q", text), alpaca("Q", text + " too")
    write_jsonl(tmp_path / "records.jsonl", [a, b])
    leaks = _find_leaks(tmp_path / "records.jsonl", lambda r: r["id"], {a["id"]: "validation", b["id"]: "test"}, 0.8)
    assert (leaks.exact_pairs, leaks.near_pairs, leaks.to_move) == (0, 1, {a["id"], b["id"]})


def test_the_leak_check_writes_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys):
    write_jsonl(tmp_path / "records.jsonl", records(4))
    outputs = {name: tmp_path / f"{name}.jsonl" for name in SPLITS}
    ctx = StageContext(params=build(SplitParams, split_params(**RATIOS, **LEAK_DEFAULTS)),
                       inputs={"records": tmp_path / "records.jsonl"}, outputs=outputs, recipe_dir=tmp_path,
                       work_dir=tmp_path, progress_interval_s=0)
    SplitStage().run(ctx)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [f"split: leak check: {i} of 4 records" for i in range(1, 5)]
