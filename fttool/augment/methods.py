"""The augmentation methods, built on nlpaug.

No method changes a protected span (fttool.augment.spans). Word-level methods (synonym, random) never
pick a protected token and rebuild the text around the words they changed byte for byte. Methods that
send whole lines through a model's tokenizer (contextual, back_translation) change spacing and, for
uncased models, casing; for them each protected span is replaced by a numbered marker ("[0]") that the
model passes through and is put back afterwards, and a text whose markers do not all come back exactly
once is reported as changed (None). Lines go to the model one by one, so line breaks stay.

`METHODS` maps a recipe's method name to its builder (its defaults are in fttool.augment.settings).
Importing this module is cheap; nlpaug, torch and transformers are imported when a rewriter is built.
"""
from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fttool.augment.settings import AugmentMethod
from fttool.augment.spans import LETTER, MARKER_PIECE, PLAIN_WORD, SKIP_TOKEN, SpanTokenizer, shield, unshield
from fttool.augment.wordnet_files import DEBIAN_WORDNET
from fttool.training.device import device as inference_device
from fttool.training.model_ref import is_local_model

T = TypeVar("T")


@contextmanager
def global_state_kept() -> Iterator[None]:
    """Python's, numpy's and torch's global generators are as they were when the block ends: nlpaug and the models
    draw from them, and importing nltk draws from Python's."""
    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = range(torch.cuda.device_count()) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The global generators seeded with `seed` inside the block, and as they were after it."""
    import numpy as np
    import torch

    with global_state_kept():
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        yield


def joint_seed(seeds: Sequence[int]) -> int:
    """One seed for a batch that a model rewrites together, fixed by the seeds of its texts."""
    digest = hashlib.sha256(",".join(map(str, seeds)).encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big")


class WordRewriter:
    """Rewrites each text on its own, with its own seed, keeping everything outside the changed words."""

    def __init__(self, augmenter, resources: dict):
        self.augmenter = augmenter
        self.resources = resources

    def rewrite(self, texts: Sequence[str], seeds: Sequence[int]) -> list[str | None]:
        return [self._rewrite(text, seed) for text, seed in zip(texts, seeds)]

    def _rewrite(self, text: str, seed: int) -> str:
        core = text.strip()
        if not core:
            return text
        # nlpaug strips the text it is given; the outer whitespace is put back unchanged.
        lead, trail = text[:len(text) - len(text.lstrip())], text[len(text.rstrip()):]
        with seeded(seed):
            return lead + self.augmenter.augment(core)[0] + trail


class ShieldedRewriter:
    """Rewrites the lines of all texts in one nlpaug call, so that the model works in batches.

    The batch shares one seed, derived from its texts' seeds: the same texts give the same result.
    """

    def __init__(self, augmenter, resources: dict):
        self.augmenter = augmenter
        self.resources = resources

    def rewrite(self, texts: Sequence[str], seeds: Sequence[int]) -> list[str | None]:
        shielded = [shield(text) for text in texts]
        # Lines without a letter (blank, or only markers and punctuation) give a model nothing to reword.
        lines = [line.strip() for masked, _ in shielded for line in masked.split("\n") if LETTER.search(line)]
        if not lines:
            return list(texts)
        with seeded(joint_seed(seeds)):
            rewritten = self.augmenter.augment(lines)
        if len(rewritten) != len(lines):
            raise RuntimeError(f"nlpaug returned {len(rewritten)} texts for {len(lines)}")
        replacements = iter(rewritten)
        results = []
        for masked, spans in shielded:
            out = []
            for line in masked.split("\n"):
                if LETTER.search(line):
                    lead, trail = line[:len(line) - len(line.lstrip())], line[len(line.rstrip()):]
                    line = lead + next(replacements).strip() + trail
                out.append(line)
            results.append(unshield("\n".join(out), spans))
        return results


def _model_location(name: str, resolve: Callable[[str], Path]) -> str:
    """A local model directory (relative to the recipe) as an absolute path, or a hub id unchanged."""
    if not is_local_model(name):
        return name
    path = resolve(str(Path(name).expanduser()))
    if not path.is_dir():
        raise ValueError(f"model directory not found: {name} (relative paths are relative to the recipe file)")
    return str(path)


def _taken(value: T | None, params: AugmentMethod, name: str) -> T:
    """A setting the method takes: fttool.augment.settings.method_params gives it a default, so None means
    parameters built some other way."""
    if value is None:
        raise ValueError(f"augment method {params.method} needs {name}; build its parameters with method_params")
    return value


def _synonym(params: AugmentMethod, resolve) -> WordRewriter:
    from fttool.augment.wordnet import ProtectedSynonymAug, resources

    return WordRewriter(ProtectedSynonymAug(_taken(params.aug_p, params, "aug_p")), resources())


def _random(params: AugmentMethod, resolve) -> WordRewriter:
    from nlpaug.augmenter.word import RandomWordAug

    tokenizer = SpanTokenizer()

    class WordSwapAug(RandomWordAug):
        def _get_swap_position(self, pos, token_length):
            # nlpaug swaps with either neighbour, punctuation and protected spans included, which glues
            # words to punctuation ("2023see ,"); only a neighbouring plain word is swapped here.
            neighbours = [index for index in (pos - 1, pos + 1)
                          if 0 <= index <= token_length and PLAIN_WORD.fullmatch(tokenizer.tokens[index])]
            return self.sample(neighbours, 1)[0] if neighbours else pos

    # stopwords_regex keeps protected tokens from being picked; "crop" ignores it (nlpaug documents
    # this), so a crop across a protected span is caught by the stage's check and rejected.
    augmenter = WordSwapAug(action=params.action, aug_p=params.aug_p, tokenizer=tokenizer.split,
                            reverse_tokenizer=tokenizer.join, stopwords_regex=SKIP_TOKEN)
    return WordRewriter(augmenter, {})


class _FastTokenizerCalls:
    """Put before nlpaug's masked language model class, for transformers 5 tokenizers: nlpaug tells fast
    tokenizers by a class name ending in 'Fast', which they no longer have, and then calls methods that no
    longer exist."""

    tokenizer: Any

    def token2id(self, token):
        return self.tokenizer.convert_tokens_to_ids(token)

    def id2token(self, _id):
        return self.tokenizer.convert_ids_to_tokens(_id)


# config.json model_type -> the nlpaug model family whose mask token and subword prefix it uses
MASKED_LM_FAMILIES = {"bert": "bert", "distilbert": "bert", "roberta": "roberta"}


def _contextual(params: AugmentMethod, resolve) -> ShieldedRewriter:
    import nlpaug.augmenter.word as naw
    import nlpaug.model.lang_models as nml
    from transformers import AutoConfig

    model_path = _taken(params.model_path, params, "model_path")
    location = _model_location(model_path, resolve)
    model_type = AutoConfig.from_pretrained(location).model_type
    if model_type not in MASKED_LM_FAMILIES:
        raise ValueError(f"contextual augmentation supports masked language models of type "
                         f"{', '.join(MASKED_LM_FAMILIES)}; {model_path} is '{model_type}'")
    family = MASKED_LM_FAMILIES[model_type]
    base = {"bert": nml.Bert, "roberta": nml.Roberta}[family]
    model_class = type("MaskedLanguageModel", (_FastTokenizerCalls, base), {})

    class ContextualWordEmbsAug(naw.ContextualWordEmbsAug):
        # Same class name on purpose: nlpaug batches a list of texts only for augmenters it knows by name.
        @classmethod
        def get_model(cls, model_path, model_type, device="cuda", force_reload=False, batch_size=32, top_k=None,
                      silence=True, use_custom_api=True):
            # Built here rather than taken from nlpaug's cache, which is keyed on the directory's base name only.
            return model_class(model_path, top_k=top_k, batch_size=batch_size, device=device, silence=silence)

    device = inference_device()
    augmenter = ContextualWordEmbsAug(model_path=location, model_type=family, action="substitute",
                                      aug_p=params.aug_p, top_k=params.top_k, batch_size=params.batch_size,
                                      device=device, stopwords_regex=MARKER_PIECE)
    return ShieldedRewriter(augmenter, {"masked_lm": params.model_path, "device": device})


def _back_translation(params: AugmentMethod, resolve) -> ShieldedRewriter:
    from nlpaug.augmenter.word import BackTranslationAug

    from_model = _taken(params.from_model, params, "from_model")
    to_model = _taken(params.to_model, params, "to_model")
    device = inference_device()
    augmenter = BackTranslationAug(from_model_name=_model_location(from_model, resolve),
                                   to_model_name=_model_location(to_model, resolve), device=device,
                                   batch_size=params.batch_size, max_length=params.max_length)
    return ShieldedRewriter(augmenter, {"translation_models": [params.from_model, params.to_model],
                                        "device": device})


@dataclass(frozen=True)
class Method:
    """One augmentation method: its builder, which of its settings name models, the data files outside the
    recipe that decide its output (hashed into the lineage like the models), and whether worker processes may
    rewrite its texts: only where each text is rewritten on its own with its own seed (word methods), so that the
    result does not depend on which texts share a batch; a model method seeds a whole batch and keeps its model in
    the stage's process, which it already works on every core of."""
    build: Callable[[AugmentMethod, Callable[[str], Path]], WordRewriter | ShieldedRewriter]
    model_keys: tuple[str, ...] = ()
    data_paths: tuple[str, ...] = ()
    in_workers: bool = False


METHODS: dict[str, Method] = {
    "synonym": Method(_synonym, data_paths=(str(DEBIAN_WORDNET),), in_workers=True),
    "random": Method(_random, in_workers=True),
    "contextual": Method(_contextual, ("model_path",)),
    "back_translation": Method(_back_translation, ("from_model", "to_model")),
}


@functools.lru_cache(maxsize=4)
def word_rewriter(params: AugmentMethod) -> WordRewriter:
    """The rewriter of a word method, built once per process (WordNet's index from the machine's cache, which the
    stage's process fills before any worker starts)."""
    assert METHODS[params.method].in_workers, "model methods are built with the recipe's paths, in the stage"
    rewriter = build_rewriter(params, _no_paths)
    assert isinstance(rewriter, WordRewriter)
    return rewriter


def build_rewriter(params: AugmentMethod, resolve: Callable[[str], Path]) -> WordRewriter | ShieldedRewriter:
    """The method's rewriter, built leaving the global generators as they were (see global_state_kept)."""
    with global_state_kept():
        return METHODS[params.method].build(params, resolve)


def _no_paths(path: str) -> Path:
    raise AssertionError("word methods read no recipe-relative path")


def rewrite_batch(batch: list[tuple[str, int]], params: AugmentMethod) -> list[str | None]:
    """A word method's rewrite of each (text, seed) of a batch: the same in any process, for any batch."""
    return word_rewriter(params).rewrite([text for text, _ in batch], [seed for _, seed in batch])
