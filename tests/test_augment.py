"""Synonym augmentation with real nlpaug, WordNet built from Debian's files and spaCy POS tags."""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from conftest import alpaca
from fttool.records import read_jsonl

# The test's own idea of what must survive: placeholders, anything with a digit, URLs, e-mail addresses.
PROTECTED = re.compile(r"<[A-Z_]+>|https?://\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\S*\d\S*")

TRAIN = [
    alpaca("Write a short letter to <PERSON> about the 3 missing invoices.", "Dear <PERSON>, ...", region="north"),
    alpaca("Summarise the quarterly report and send it to <EMAIL_ADDRESS> before Friday.", "Done.",
           "The company earned 4.5 million dollars in 2023, see https://example.com/q4-report.", region="south"),
    alpaca("Explain why the sky looks blue on a clear day.", "Rayleigh scattering.", region="north"),
    alpaca("Describe a quick method to clean a dirty kitchen floor.", "Sweep, then mop.", region="east"),
    alpaca("List three healthy breakfast ideas for busy students.", "Oats, eggs, fruit.", region="west"),
    alpaca("Translate the following sentence into simple English.", "It is cold.",
           "The weather is exceedingly frigid today.", region="north"),
    alpaca("<PERSON> 42", "nothing here can be swapped"),
]
VALIDATION = [alpaca("Suggest a name for a new bakery.", "Crumbs & Co.")]
TEST = [alpaca("Give two reasons to learn a second language.", "Travel, work.")]


def synonym(**overrides) -> dict:
    return {"methods": [{"method": "synonym", "ratio": 1.0, "fields": ["instruction", "input"], "aug_p": 0.3,
                         "seed": 0, **overrides}]}


@pytest.fixture(scope="module", autouse=True)
def wordnet_cache(tmp_path_factory):
    """One nltk_data directory for the module, built from /usr/share/wordnet, outside the user's home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FTTOOL_CACHE", str(tmp_path_factory.mktemp("fttool-cache")))
        yield


def _augment(run_stage, params: dict, train=TRAIN, validation=VALIDATION, test=TEST):
    result, outputs = run_stage("augment", params, {"train": train, "validation": validation, "test": test})
    return result, list(read_jsonl(outputs["train"])), outputs["train"]


def test_records_are_only_added_to_train_each_with_a_parent(run_stage):
    result, records, _ = _augment(run_stage, synonym())
    assert records[:len(TRAIN)] == TRAIN  # originals first, unchanged, in order
    new = records[len(TRAIN):]
    by_id = {r["id"]: r for r in TRAIN}
    assert new and result.added == {"synonym": len(new)}
    assert result.removed == {}
    assert len({r["id"] for r in records}) == len(records)
    for record in new:
        parent = by_id[record["parent_id"]]
        assert re.fullmatch(r"a[0-9a-f]{16}", record["id"])
        assert record["augmentation"] == {"method": "synonym", "params": {
            "ratio": 1.0, "fields": ["instruction", "input"], "aug_p": 0.3, "seed": 0}}
        assert record["output"] == parent["output"]  # only the chosen fields change
        assert record["meta"] == parent["meta"] and record["source"] == parent["source"]
        assert (record["instruction"], record["input"]) != (parent["instruction"], parent["input"])
    summary = result.summary
    assert summary["protected_spans_checked"] is True
    assert summary["examples"] == [{"id": r["id"], "parent_id": r["parent_id"]} for r in new[:5]]
    assert set(summary["resources"]) == {"wordnet", "pos_tagger"}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(run_stage, tmp_path):
    outputs = []
    for seed in (7, 7, 8):
        _, _, path = _augment(run_stage, synonym(seed=seed))
        outputs.append(Path(path).read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_global_random_state_is_left_alone(run_stage):
    random.seed(123)
    expected = random.random()
    random.seed(123)
    _augment(run_stage, synonym())
    assert random.random() == expected


def test_protected_spans_survive_byte_identical(run_stage):
    # aug_p 1 asks for every swappable word to change, so anything unprotected would be hit.
    result, records, _ = _augment(run_stage, synonym(aug_p=1.0, ratio=3))
    by_id = {r["id"]: r for r in TRAIN}
    new = records[len(TRAIN):]
    assert len(new) > len(TRAIN)
    for record in new:
        parent = by_id[record["parent_id"]]
        for field in ("instruction", "input"):
            assert PROTECTED.findall(record[field]) == PROTECTED.findall(parent[field])
    assert any("<PERSON>" in r["instruction"] for r in new)
    assert any("https://example.com/q4-report." in r["input"] and "4.5" in r["input"] for r in new)


def test_whitespace_outside_swapped_words_is_kept(run_stage):
    text = "  Explain why the sky looks blue.\n\nThen describe   sunsets.\t"
    train = [alpaca(text, "answer")]
    _, records, _ = _augment(run_stage, synonym(aug_p=0.5, ratio=4), train=train, validation=[], test=[])
    assert len(records) > 1
    for record in records[1:]:
        swapped = record["instruction"]
        assert swapped.startswith("  ") and swapped.endswith(".\t")
        assert "\n\n" in swapped and "   " in swapped


def test_rejections_add_up(run_stage):
    params = synonym(ratio=2.5)
    first, records, _ = _augment(run_stage, params)
    stats = first.summary["methods"]["synonym"]
    assert stats["generated"] == round(2.5 * len(TRAIN))
    # "<PERSON> 42" has nothing to swap: every copy of it comes back unchanged.
    assert stats["rejected"]["unchanged"] >= 2
    assert stats["generated"] == stats["kept"] + sum(stats["rejected"].values())
    assert first.added["synonym"] == stats["kept"] == len(records) - len(TRAIN)

    # A test record equal (up to case and spacing) to a generated one turns that candidate into a duplicate.
    generated = records[len(TRAIN)]
    clash = alpaca("  " + generated["instruction"].upper(), generated["output"], generated["input"])
    second, _, _ = _augment(run_stage, params, test=TEST + [clash])
    again = second.summary["methods"]["synonym"]
    assert again["rejected"]["duplicate"] == stats["rejected"]["duplicate"] + 1
    assert again["kept"] == stats["kept"] - 1
    assert again["generated"] == again["kept"] + sum(again["rejected"].values())


def test_ratio_picks_parents_and_skips_other_formats(run_stage):
    train = [alpaca(f"Describe a quiet morning walk number {i} near the river.", "ok") for i in range(10)]
    train.append({"id": "rpc", "source": "test", "format": "prompt_completion", "prompt": "Name a happy animal.",
                  "completion": "A dog.", "meta": {}})
    train.append({"id": "rchat", "source": "test", "format": "chat", "meta": {},
                  "messages": [{"role": "user", "content": "Describe the ocean."},
                               {"role": "assistant", "content": "Big and blue."}]})
    result, records, _ = _augment(run_stage, synonym(ratio=0.5, fields=["instruction", "prompt"]), train=train,
                                  validation=[], test=[])
    stats = result.summary["methods"]["synonym"]
    assert stats["generated"] == 6
    new = records[len(train):]
    assert len({r["parent_id"] for r in new}) == len(new)  # below 1, each parent at most once
    for record in new:
        assert record["format"] != "chat"
        if record["format"] == "prompt_completion":
            assert record["completion"] == "A dog."


def test_missing_debian_wordnet_names_the_packages(tmp_path, monkeypatch):
    from fttool import augment_wordnet

    monkeypatch.setenv("FTTOOL_CACHE", str(tmp_path))
    monkeypatch.setattr(augment_wordnet, "DEBIAN_WORDNET", tmp_path / "no-wordnet")
    with pytest.raises(RuntimeError, match="apt-get install wordnet-base wordnet-sense-index"):
        augment_wordnet.nltk_data_dir()


def test_built_wordnet_matches_nltk_expectations():
    from nltk.corpus import wordnet

    from fttool import augment_wordnet

    root = augment_wordnet.nltk_data_dir()
    lines = (root / "corpora" / "wordnet" / "lexnames").read_text().splitlines()
    assert len(lines) == 45 and lines[0] == "00\tadj.all\t3" and lines[44] == "44\tadj.ppl\t3"
    augment_wordnet.ProtectedSynonymAug(0.3)  # loads the corpus from that directory
    assert wordnet.get_version() == "3.0"
    assert wordnet.synset("dog.n.01").lexname() == "noun.animal"
