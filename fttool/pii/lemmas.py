"""Fine-grained tags, coarse part-of-speech tags and lemmas only for the texts that read them.

Beside its NER (which has a tok2vec layer of its own), spaCy's small English pipeline runs a shared tok2vec layer,
the tagger (the only component that listens to it once the parser is off), an attribute ruler (coarse POS tags from
the fine-grained ones) and a lemmatizer: about a quarter of the analysis's CPU on GSM8K (docs/benchmarks.md). Few
texts need their output. fttool reads fine-grained tags in spans the NER calls PERSON (whether a span reads as a
name, fttool.pii.recognizers) or LOCATION, and after a capitalised given name (fttool.pii.names.given_name_spans);
coarse tags after a one-word place (names.place_is_person); presidio reads lemmas only to look for a recognizer's
context words next to a finding that recognizer made.

`defer_lemmas` leaves these components out of `nlp.pipe`. A component at the end of the pipeline runs tok2vec and
the tagger, in one batch, on the docs of each `nlp.pipe` batch that have an entity of those types or a capitalised
word that is a given name of fttool's lexicon; the attribute ruler and the lemmatizer run on a doc with a LOCATION
entity, and on any doc on first reading of its lemmas (tagged first if it was not). tok2vec computes each token from
its own doc alone, so a doc gets the same vectors, tags and lemmas whichever docs share its batch, or none, and the
findings are the same.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

LEMMA_COMPONENTS = ("attribute_ruler", "lemmatizer")
TAGGING_COMPONENTS = ("tok2vec", "tagger")
# presidio entity types in whose spans a recognizer reads fine-grained tags (fttool.pii.recognizers' name check,
# fttool.pii.names.place_is_person), and those after which it reads coarse tags (place_is_person).
TAGS_READ_IN = frozenset({"PERSON", "LOCATION"})
POS_READ_AFTER = frozenset({"LOCATION"})
TAGGING_FACTORY = "fttool_tags_where_read"


class TagsWhereRead:
    """A pipeline component: the deferred tok2vec and tagger, run in one batch on the docs `needs_tags` picks."""

    def __init__(self):
        self.components: list = []
        self.needs_tags: Callable = lambda doc: True

    def __call__(self, doc):
        return next(self.pipe([doc]))

    def pipe(self, docs: Iterable, batch_size: int = 128) -> Iterator:
        from spacy.util import minibatch

        for batch in minibatch(docs, batch_size):
            picked = [doc for doc in batch if self.needs_tags(doc)]
            for component in self.components:
                picked = list(component.pipe(picked, batch_size=batch_size))
            yield from batch


def _make_tags_where_read(nlp, name: str) -> TagsWhereRead:
    return TagsWhereRead()


def _deferrable_tagging(nlp) -> tuple[str, ...]:
    """tok2vec and the tagger, when the tagger is the only running component that listens to that tok2vec."""
    if not set(TAGGING_COMPONENTS) <= set(nlp.pipe_names):
        return ()
    listeners = set(getattr(nlp.get_pipe("tok2vec"), "listening_components", ["unknown"])) - set(nlp.disabled)
    return TAGGING_COMPONENTS if listeners == {"tagger"} else ()


def _tags_read(nlp_engine) -> Callable:
    """Whether a doc's tags may be read: an entity of TAGS_READ_IN (as presidio names the NER's label) or a
    capitalised given name (a superset of what fttool.pii.names.given_name_spans reads tags after)."""
    from fttool.pii.names import lexicon

    mapping = nlp_engine.ner_model_configuration.model_to_presidio_entity_mapping
    given = lexicon()[0]

    def needs_tags(doc) -> bool:
        return (any(mapping.get(span.label_, span.label_) in TAGS_READ_IN for span in doc.ents)
                or any(token.is_title and token.lower_ in given for token in doc))

    return needs_tags


def _add_tagging(nlp, needs_tags: Callable) -> None:
    from spacy.language import Language

    if not Language.has_factory(TAGGING_FACTORY):
        Language.factory(TAGGING_FACTORY, func=_make_tags_where_read)
    component = nlp.add_pipe(TAGGING_FACTORY, last=True)
    component.components = [nlp.get_pipe(name) for name in TAGGING_COMPONENTS]
    component.needs_tags = needs_tags


def _artifacts_class():
    from presidio_analyzer.nlp_engine import NlpArtifacts

    class DeferredLemmaArtifacts(NlpArtifacts):
        """presidio's NlpArtifacts, with lemmas and keywords made from them computed on first use."""

        def __init__(self, entities, tokens, tokens_indices, nlp_engine, language, scores, complete):
            # NlpArtifacts.__init__ would compute the keywords from the lemmas straight away.
            self.entities, self.tokens, self.tokens_indices = entities, tokens, tokens_indices
            self.nlp_engine, self.scores = nlp_engine, scores if scores else [0.85] * len(entities)
            self._language, self._complete = language, complete
            self._lemmas: list[str] | None = None
            self._keywords: list[str] | None = None

        # presidio's plain attributes, read-only properties here: nothing assigns them after construction.
        @property
        def lemmas(self) -> list[str]:  # type: ignore[override]
            if self._lemmas is None:
                self._complete(self.tokens)
                self._lemmas = [token.lemma_ for token in self.tokens]
            return self._lemmas

        @property
        def keywords(self) -> list[str]:  # type: ignore[override]
            if self._keywords is None:
                self._keywords = NlpArtifacts.set_keywords(self.nlp_engine, self.lemmas, self._language)
            return self._keywords

    return DeferredLemmaArtifacts


def _completion(tagging_components: list, lemma_components: list) -> Callable[[Any], None]:
    """What tags and lemmatises a doc that has not been yet: the components defer_lemmas took out of the pipeline."""
    def complete(doc) -> None:
        if tagging_components and not doc.has_annotation("TAG"):
            for component in tagging_components:
                component(doc)
        if not doc.has_annotation("POS"):
            for component in lemma_components:
                component(doc)

    return complete


def defer_lemmas(nlp_engine) -> None:
    """Make a presidio spaCy engine tag and lemmatise a doc only when its tags or lemmas are read; an engine of
    another kind (transformers), or a model without an attribute ruler and a lemmatizer, is left as it is."""
    if nlp_engine.engine_name != "spacy" or type(nlp_engine).__name__ != "SpacyNlpEngine":
        return
    models = nlp_engine.nlp
    if not all(set(LEMMA_COMPONENTS) <= set(nlp.pipe_names) for nlp in models.values()):
        return
    tagging = {language: _deferrable_tagging(nlp) for language, nlp in models.items()}
    needs_tags = _tags_read(nlp_engine)
    for language, nlp in models.items():
        for name in (*tagging[language], *LEMMA_COMPONENTS):
            nlp.disable_pipe(name)
        if tagging[language]:
            _add_tagging(nlp, needs_tags)
    artifacts_class = _artifacts_class()
    completions = {language: _completion([nlp.get_pipe(name) for name in tagging[language]],
                                         [nlp.get_pipe(name) for name in LEMMA_COMPONENTS])
                   for language, nlp in models.items()}

    def artifacts(doc, language: str):
        complete = completions[language]
        entities, scores = nlp_engine._get_updated_entities(nlp_engine._get_entities(doc),
                                                            nlp_engine._get_scores_for_entities(doc))
        if any(span.label_ in POS_READ_AFTER for span in entities):
            complete(doc)
        return artifacts_class(entities=entities, tokens=doc, tokens_indices=[token.idx for token in doc],
                               nlp_engine=nlp_engine, language=language, scores=scores, complete=complete)

    nlp_engine._doc_to_nlp_artifact = artifacts
