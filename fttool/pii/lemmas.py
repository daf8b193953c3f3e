"""Lemmas and coarse part-of-speech tags only for the texts that need them.

spaCy's English pipelines end in an attribute ruler (coarse POS tags from the fine-grained ones) and a lemmatizer:
about a fifth of the model's time (measured on GSM8K, docs/benchmarks.md). Few texts need them: presidio reads
lemmas only to look for a recognizer's context words next to a finding that recognizer made, and fttool reads
coarse tags only after a one-word place (fttool.pii.names.place_is_person). `defer_lemmas` leaves both components
out of `nlp.pipe` and runs them on a text's doc when one of those happens: always for a doc with a LOCATION
entity, and on first reading of its lemmas otherwise. Both components work on one doc at a time with fixed rules,
so a doc gets the same tags and lemmas either way, and so do the findings.
"""
from __future__ import annotations

DEFERRED = ("attribute_ruler", "lemmatizer")
# Entity types after which a recognizer reads coarse POS tags (fttool.pii.names.place_is_person).
TAGS_READ_AFTER = frozenset({"LOCATION"})


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

        @property
        def lemmas(self) -> list[str]:
            if self._lemmas is None:
                self._complete(self.tokens)
                self._lemmas = [token.lemma_ for token in self.tokens]
            return self._lemmas

        @property
        def keywords(self) -> list[str]:
            if self._keywords is None:
                self._keywords = NlpArtifacts.set_keywords(self.nlp_engine, self.lemmas, self._language)
            return self._keywords

    return DeferredLemmaArtifacts


def defer_lemmas(nlp_engine) -> None:
    """Make a presidio spaCy engine tag and lemmatise a doc only when its lemmas or tags are read; an engine of
    another kind (transformers), or a model without both components, is left as it is."""
    if nlp_engine.engine_name != "spacy" or type(nlp_engine).__name__ != "SpacyNlpEngine":
        return
    models = nlp_engine.nlp
    if not all(set(DEFERRED) <= set(nlp.pipe_names) for nlp in models.values()):
        return
    for nlp in models.values():
        for name in DEFERRED:
            nlp.disable_pipe(name)
    artifacts_class = _artifacts_class()

    def artifacts(doc, language: str):
        components = [models[language].get_pipe(name) for name in DEFERRED]

        def complete(doc) -> None:
            if not doc.has_annotation("POS"):
                for component in components:
                    component(doc)

        entities, scores = nlp_engine._get_updated_entities(nlp_engine._get_entities(doc),
                                                            nlp_engine._get_scores_for_entities(doc))
        if any(span.label_ in TAGS_READ_AFTER for span in entities):
            complete(doc)
        return artifacts_class(entities=entities, tokens=doc, tokens_indices=[token.idx for token in doc],
                               nlp_engine=nlp_engine, language=language, scores=scores, complete=complete)

    nlp_engine._doc_to_nlp_artifact = artifacts
