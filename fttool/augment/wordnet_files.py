"""WordNet 3.0 from Debian's files, offline, parsed once per machine rather than once per run.

nltk's downloader needs the internet, so the corpus is assembled from Debian's `wordnet-base` and
`wordnet-sense-index` packages (the same data as nltk's corpus) plus the `lexnames` file nltk also wants. nltk
parses its index files on every start, which costs seconds; `CachedWordNetReader` keeps the parsed index in a
pickle named by the sha256 of the files it came from, so a changed corpus is parsed afresh, never served stale.

This module imports nothing heavy at import time: the augment stage names DEBIAN_WORDNET among its inputs.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path

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
INSTALL_HINT = "install Debian's packages with `apt-get install wordnet-base wordnet-sense-index`"


def missing_files() -> list[str]:
    return [name for name in WORDNET_FILES if not (DEBIAN_WORDNET / name).is_file()]


def cache_root() -> Path:
    return Path(os.environ.get("FTTOOL_CACHE") or Path.home() / ".cache" / "fttool")


def nltk_data_dir() -> Path:
    """An nltk_data directory holding WordNet 3.0, built once from Debian's files."""
    root = cache_root() / "nltk_data"
    target = root / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return root
    missing = missing_files()
    if missing:
        raise RuntimeError(f"synonym augmentation needs WordNet 3.0 in {DEBIAN_WORDNET} (missing: "
                           f"{', '.join(missing)}); {INSTALL_HINT}")
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


def corpus_digest(corpus: Path) -> str:
    """sha256 over the corpus files nltk parses at start-up, in a fixed order."""
    digest = hashlib.sha256()
    for name in (*WORDNET_FILES, "lexnames"):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256((corpus / name).read_bytes()).digest())
    return digest.hexdigest()


def wordnet_reader():
    """nltk's WordNet reader over the offline corpus, its parsed index reused from the cache when the files match."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class CachedWordNetReader(WordNetCorpusReader):
        def __init__(self, root, index_file: Path):
            self._index_file = index_file
            super().__init__(root, None)

        def _load_lemma_pos_offset_map(self):
            if self._index_file.is_file():
                with open(self._index_file, "rb") as handle:
                    self._lemma_pos_offset_map, self._exception_map = pickle.load(handle)
                return
            super()._load_lemma_pos_offset_map()

        def map_wn(self, version="wordnet"):
            # nltk maps its "wordnet" corpus onto the loaded version, for Open Multilingual Wordnet lookups only.
            # Here the loaded corpus is that same WordNet 3.0, so the map would be the identity; building it takes
            # most of nltk's start-up (seconds), and English synonyms never use it.
            return None

        def _load_exception_map(self):
            if self._exception_map:  # read with the lemma index from the cache
                return
            super()._load_exception_map()
            staging = self._index_file.with_name(f".{self._index_file.name}.{os.getpid()}")
            with open(staging, "wb") as handle:
                pickle.dump((self._lemma_pos_offset_map, self._exception_map), handle, protocol=5)
            staging.replace(self._index_file)  # atomic, so a concurrent run reads a whole file or none

    import nltk
    from nltk.data import FileSystemPathPointer

    root = nltk_data_dir()
    if str(root) not in nltk.data.path:  # nltk reads corpora only under its data path
        nltk.data.path.insert(0, str(root))
    corpus = root / "corpora" / "wordnet"
    index_file = cache_root() / f"wordnet-index-{corpus_digest(corpus)[:16]}.pickle"
    with warnings.catch_warnings():
        # nltk notes that Open Multilingual Wordnet is absent; English synonyms do not use it.
        warnings.filterwarnings("ignore", message="The multilingual functions are not available", category=UserWarning)
        return CachedWordNetReader(FileSystemPathPointer(str(corpus)), index_file)
