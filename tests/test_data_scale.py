"""Dedup and split at scale: signatures equal to datasketch's, output byte-identical to the implementation before
the engines (digests kept below) on any engine and number of workers, and the leakage pass skipped only where
dedup already guarantees its result."""
import hashlib
import importlib.util
import json
import random
import sys
import unicodedata

import pytest
from support.data import split_params
from support.dedup_fixture import fixture_records

from fttool.data import dedup as dedup_module
from fttool.data import split as split_module
from fttool.data.dedup import CONTROL_CHARS
from fttool.data.engines import available_cores, engine_problems
from fttool.data.minhash import lsh_bands, shingles, signatures
from fttool.data.records import SPLITS, read_jsonl, write_jsonl
from fttool.data.settings import EngineSettings, RaySettings
from fttool.data.split import _find_leaks, dedup_rules_out_leaks
from fttool.pipeline.params import build
from fttool.recipe import RecipeInvalid, compile_recipe

LOCAL = {"engine": "local", "workers": 1, "ray": {"address": "", "num_cpus": None}}
# sha256 over dedup's output file and summary, then the three split files and the split's summary, as the
# implementation before the engines wrote them for fixture_records() (commit 6e7a2ef; see _digest).
BEFORE = {
    "exact+near": ({"exact": True, "near": True, "near_threshold": 0.8}, {},
                   "60e8ee5c761ecbbd129800554b02fe731881013ff406f922eed253c94bfe2669"),
    "exact only": ({"exact": True, "near": False, "near_threshold": 0.8}, {},
                   "d6e533969dcd100b9f3cb3d56bcc5ad234c048dc274faa4daa0240fac9b94e0e"),
    "near at 0.7, group_by": ({"exact": False, "near": True, "near_threshold": 0.7}, {"group_by": "region"},
                              "4bdb827c5aaf507b98a4884d610482acdb41f937febf13784a68295cfa37f6ed"),
    "no dedup, stratify": ({"exact": False, "near": False, "near_threshold": 0.8}, {"stratify": "region"},
                           "51edebd18c1906f42ff28182f3efcf9c3c79643ae04103e84c8d118c0425fa19"),
}


def _dedup_params(dedup: dict, compute: dict) -> dict:
    return {**dedup, "semantic": False, "semantic_threshold": 0.95, "compute": compute}


def _split_params(dedup: dict, split: dict) -> dict:
    # What the compiler tells the split about the dedup before it (fttool.data.settings.split_params).
    return split_params(train=0.6, validation=0.2, test=0.2, leak_threshold=0.8, **split,
                        deduplicated_exact=dedup["exact"] or dedup["near"],
                        deduplicated_near_threshold=dedup["near_threshold"] if dedup["near"] else None)


def _digest(run_stage, dedup: dict, split: dict, compute: dict) -> str:
    digest = hashlib.sha256()
    result, outputs = run_stage("dedup", _dedup_params(dedup, compute), {"records": fixture_records()})
    digest.update(outputs["records"].read_bytes())
    digest.update(json.dumps([result.summary, result.removed], sort_keys=True).encode())
    moved = outputs["records"].rename(outputs["records"].with_name("deduplicated.jsonl"))
    result, outputs = run_stage("split", _split_params(dedup, split), {"records": moved})
    for name in SPLITS:
        digest.update(outputs[name].read_bytes())
    digest.update(json.dumps(result.summary, sort_keys=True).encode())
    return digest.hexdigest()


def test_signatures_are_datasketchs_value_for_value():
    from datasketch import MinHash

    rng = random.Random(4)
    words = ["a", "b", "Straße", "ΣΑΣ", "x" * 40, *(f"w{i}" for i in range(50))]
    texts = ["", "one", "two words", *(" ".join(rng.choice(words) for _ in range(rng.randint(3, 300)))
                                       for _ in range(200))]
    for text, row in zip(texts, signatures([shingles(text) for text in texts])):
        reference = MinHash(num_perm=128)
        reference.update_batch(list(set(shingles(text))))
        assert (reference.hashvalues == row).all()


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.5, 0.55, 0.7, 0.75, 0.79, 0.8, 0.81, 0.9, 0.95, 0.98, 0.99, 1.0])
def test_lsh_bands_are_datasketchs(threshold):
    from datasketch import MinHashLSH

    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=128, weights=(0.1, 0.9))
        expected = (lsh.b, lsh.r)
    except ValueError:  # a single band, which datasketch refuses
        expected = (2, 64)
    assert lsh_bands(threshold) == expected


def test_the_control_character_pattern_is_unicodes_cc_but_newline_and_tab():
    every = "".join(map(chr, range(0x110000)))
    removed = set(every) - set(CONTROL_CHARS.sub("", every))
    assert removed == {char for char in every if unicodedata.category(char) == "Cc"} - {"\n", "\t"}


@pytest.mark.parametrize("case", list(BEFORE))
def test_output_is_byte_identical_to_before_in_one_process(run_stage, case):
    dedup, split, expected = BEFORE[case]
    assert _digest(run_stage, dedup, split, LOCAL) == expected


def test_output_is_byte_identical_with_worker_processes(run_stage, monkeypatch):
    monkeypatch.setattr(dedup_module, "RECORDS_PER_BATCH", 64)  # seven batches, several in flight at once
    dedup, split, expected = BEFORE["exact+near"]
    assert _digest(run_stage, dedup, split, {**LOCAL, "workers": 2}) == expected


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'fttool[ray]')")
def test_ray_engine_on_a_local_cluster_is_byte_identical(run_stage, monkeypatch):
    """Through Ray Data on a cluster the stage starts (tests/test_ray_engine.py tests the engine itself)."""
    import ray

    monkeypatch.setattr(dedup_module, "RECORDS_PER_BATCH", 64)  # seven batches, several in flight at once
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # a cluster elsewhere, which an empty address does not mean
    dedup, split, expected = BEFORE["exact+near"]
    on_ray = {"engine": "ray", "workers": None, "ray": {"address": "", "num_cpus": 2}}
    assert _digest(run_stage, dedup, split, on_ray) == expected
    assert not ray.is_initialized()  # the cluster started for the stage was stopped after it


def test_without_ray_the_engine_is_an_unmet_requirement_naming_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed: find_spec finds nothing
    [problem] = engine_problems(EngineSettings("ray", None, RaySettings("", None)))
    assert "pip install 'fttool[ray]'" in problem and "data.engine: local" in problem
    assert engine_problems(EngineSettings("local", None, RaySettings("", None))) == []


# -- the leakage pass that dedup makes redundant --------------------------------------------------------------

def _near_copies(seed: int, n: int = 120) -> list[dict]:
    """n records of 30 random words from a small vocabulary, each with copies that change 1 to 6 words: pairs on
    both sides of every threshold, many of them in different splits."""
    from conftest import alpaca

    rng = random.Random(seed)
    records = []
    for i in range(n):
        words = [f"v{rng.randrange(200)}" for _ in range(30)]
        records.append(alpaca(f"Q{i}", " ".join(words)))
        for changes in range(1, rng.randint(2, 7)):
            copy = list(words)
            for _ in range(changes):
                copy[rng.randrange(30)] = f"v{rng.randrange(200)}"
            records.append(alpaca(f"Q{i}", " ".join(copy)))
    rng.shuffle(records)
    return records


@pytest.mark.parametrize(("dedup_threshold", "leak_threshold"), [(0.8, 0.8), (0.79, 0.81), (0.7, 0.7), (0.9, 0.91)])
def test_after_dedup_at_the_same_banding_the_full_leakage_pass_finds_nothing(run_stage, tmp_path, dedup_threshold,
                                                                             leak_threshold):
    for seed in range(3):
        records = _near_copies(seed)
        dedup = {"exact": True, "near": True, "near_threshold": dedup_threshold}
        result, outputs = run_stage("dedup", _dedup_params(dedup, LOCAL), {"records": records})
        assert result.removed["near_duplicate"] > 0  # the fixture has pairs for dedup to remove
        kept = list(read_jsonl(outputs["records"]))
        params = build(split_module.SplitParams, _split_params(dedup, {}) | {"leak_threshold": leak_threshold})
        assert dedup_rules_out_leaks(params)
        # The pass the split skips, run in full on every split assignment at once: all records in different splits.
        everywhere = {record["id"]: SPLITS[i % 3] for i, record in enumerate(kept)}
        leaks = _find_leaks(outputs["records"], lambda record: record["id"], everywhere, leak_threshold, tmp_path)
        assert (leaks.exact_pairs, leaks.near_pairs) == (0, 0)
        # Without dedup the same pass does find pairs in the same records.
        write_jsonl(tmp_path / "raw.jsonl", records)
        raw = {record["id"]: SPLITS[i % 3] for i, record in enumerate(records)}
        assert _find_leaks(tmp_path / "raw.jsonl", lambda record: record["id"], raw, leak_threshold).near_pairs


@pytest.mark.parametrize(("dedup", "leak_threshold"), [
    ({"exact": True, "near": True, "near_threshold": 0.7}, 0.8),  # another banding: LSH may miss other pairs
    ({"exact": True, "near": True, "near_threshold": 0.9}, 0.8),  # a higher threshold keeps pairs the check finds
    ({"exact": True, "near": False, "near_threshold": 0.8}, 0.8),
    ({"exact": False, "near": False, "near_threshold": 0.8}, 0.8)])
def test_otherwise_the_leakage_pass_runs(dedup, leak_threshold):
    params = build(split_module.SplitParams, _split_params(dedup, {}) | {"leak_threshold": leak_threshold})
    assert not dedup_rules_out_leaks(params)


def test_the_split_skips_the_pass_when_dedup_rules_out_leaks_and_not_for_pairs(run_stage, monkeypatch):
    from conftest import alpaca

    dedup = {"exact": True, "near": True, "near_threshold": 0.8}
    calls = []
    monkeypatch.setattr(split_module, "_find_leaks", lambda *args, **kwargs: calls.append(args) or
                        split_module._Leaks())
    run_stage("split", _split_params(dedup, {}), {"records": [alpaca(f"Q{i}", "A") for i in range(20)]})
    assert calls == []
    pair = {"id": "rpair", "source": "test", "format": "preference", "messages": [{"role": "user", "content": "Q"}],
            "chosen": "yes", "rejected": "no", "meta": {}}
    run_stage("split", _split_params(dedup, {}), {"records": [pair, *(alpaca(f"Q{i}", "A") for i in range(5))]})
    assert len(calls) == 1


# -- settings ------------------------------------------------------------------------------------------------

def _compiled(tmp_path, data: str):
    (tmp_path / "d.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: scale\ndata:\n  sources:\n    - {{path: d.jsonl, format: alpaca}}\n{data}")
    return {stage.name: stage.params for stage in compile_recipe(recipe).stages}


def test_engine_settings_default_to_local_on_the_cores_available(tmp_path):
    params = _compiled(tmp_path, "")
    assert params["dedup"].compute == EngineSettings("local", None, RaySettings("", None))
    assert params["split"].deduplicated_exact and params["split"].deduplicated_near_threshold is None
    assert available_cores() >= 1


def test_engine_settings_from_the_recipe(tmp_path):
    params = _compiled(tmp_path, "  workers: 3\n  engine: ray\n  ray: {address: '10.0.0.5:6379', num_cpus: 8}\n"
                                 "  dedup: {near: true, near_threshold: 0.75}\n")
    assert params["dedup"].compute == EngineSettings("ray", 3, RaySettings("10.0.0.5:6379", 8))
    assert params["split"].deduplicated_near_threshold == 0.75
    assert lsh_bands(0.75) != lsh_bands(params["split"].leak_threshold)


@pytest.mark.parametrize("data", ["  workers: 0\n", "  engine: spark\n", "  ray: {adress: x}\n"])
def test_bad_engine_settings_are_recipe_errors(tmp_path, data):
    with pytest.raises(RecipeInvalid):
        _compiled(tmp_path, data)
