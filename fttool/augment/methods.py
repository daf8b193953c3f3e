"""The augmentation methods, built on nlpaug, and the spans that no method may change.

Protected spans are PII placeholders (<PERSON>, <PERSON_3f2a91c0>), code (``` fenced blocks and `inline`
code), URLs, e-mail addresses and any word with a digit in it. Word-level methods (synonym, random) never
pick a protected token and rebuild the text around the words they changed byte for byte. Methods that
send whole lines through a model's tokenizer (contextual, back_translation) change spacing and, for
uncased models, casing; for them each protected span is replaced by a numbered marker ("[0]") that the
model passes through and is put back afterwards, and a text whose markers do not all come back exactly
once is reported as changed (None). Lines go to the model one by one, so line breaks stay.

`METHODS` maps a recipe's method name to its defaults and its builder. Importing this module is cheap;
nlpaug, torch and transformers are imported when a rewriter is built.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fttool.training.model_ref import is_local_model

PROTECTED = (r"```[\s\S]*?(?:```|\Z)"  # fenced code; an unclosed fence protects the rest of the text
             r"|`[^`\n]+`"
             r"|<[A-Z][A-Z0-9_]*(?:_[0-9a-f]+)?>"  # placeholders and keyed-hash pseudonyms left by the PII stage
             r"|(?:https?|ftp)://\S+|www\.\S+"
             r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
             # 4.5, 1,000, 12:30 and v2.1 as one token, so their inner punctuation cannot be re-spaced
             r"|(?<!\w)[^\W\d]*\d(?:[\w.,:/-]*\w)?")
# Every non-blank character belongs to a token, so the text between tokens is only whitespace.
TOKEN = re.compile(rf"{PROTECTED}|\w+(?:['’-]\w+)*|[^\w\s]")
# Tokens this matches (anchored at the start) are protected: protected spans and anything with a digit.
SKIP_TOKEN = rf"(?:{PROTECTED})\Z|.*\d"
_SKIP_TOKEN = re.compile(SKIP_TOKEN)
MARKER = re.compile(r"\[\s*(\d+)\s*\]")  # tokenizers may space out "[0]" as "[ 0 ]"
# Model tokens never to mask: marker pieces. RoBERTa's "Ġ[" is not plain punctuation, so brackets are named.
MARKER_PIECE = r".*[\d\[\]]"
LETTER = re.compile(r"[^\W\d_]")
PLAIN_WORD = re.compile(r"[^\W\d]+(?:['’-][^\W\d]+)*")  # no digit, so never protected


def protected_spans(text: str) -> list[str]:
    """The spans no method may change, in order."""
    return [m.group() for m in TOKEN.finditer(text) if _SKIP_TOKEN.match(m.group())]


def is_structured(text: str) -> bool:
    """Whether the text parses as JSON: structured data is left exactly as it is."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def shield(text: str) -> tuple[str, list[str]]:
    """The text with each protected span replaced by a marker [i], and the spans.

    Every digit of the text is inside a protected span, so the markers are the only digits left.
    """
    spans: list[str] = []

    def mark(match: re.Match) -> str:
        if not _SKIP_TOKEN.match(match.group()):
            return match.group()
        spans.append(match.group())
        return f"[{len(spans) - 1}]"

    return TOKEN.sub(mark, text), spans


def unshield(text: str, spans: list[str]) -> str | None:
    """The text with its markers replaced by the spans; None unless every marker is there exactly once."""
    found = sorted(int(m.group(1)) for m in MARKER.finditer(text))
    if found != list(range(len(spans))):
        return None
    return MARKER.sub(lambda m: spans[int(m.group(1))], text)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """nlpaug and the models draw from the global generators; their previous state is restored for everyone else."""
    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    devices = range(torch.cuda.device_count()) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def joint_seed(seeds: Sequence[int]) -> int:
    """One seed for a batch that a model rewrites together, fixed by the seeds of its texts."""
    digest = hashlib.sha256(",".join(map(str, seeds)).encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big")


class SpanTokenizer:
    """Splits text into tokens and remembers the whitespace between them, so that join() rebuilds the
    original text around the changed words byte for byte (nlpaug's own tokenizer re-spaces punctuation).

    nlpaug calls split and join in turn for one text, so the state lives only for one augmentation.
    """

    def __init__(self):
        self.tokens: list[str] = []  # of the text being augmented
        self._gaps: list[str] = []

    def split(self, text: str) -> list[str]:
        tokens, gaps, end = [], [], 0
        for match in TOKEN.finditer(text):
            gaps.append(text[end:match.start()])
            tokens.append(match.group())
            end = match.end()
        gaps.append(text[end:])
        self.tokens, self._gaps = tokens, gaps
        return tokens

    def join(self, tokens: list[str]) -> str:
        if len(tokens) == len(self.tokens):  # substitutions and swaps keep every position
            positions = range(len(tokens))
        else:
            positions = self._kept_positions(tokens)
        # A kept token takes the whitespace that preceded it; the first one takes the text's leading whitespace.
        parts = [self._gaps[0]]
        for index, (position, token) in enumerate(zip(positions, tokens)):
            parts.append((self._gaps[position] if index else "") + token)
        return "".join(parts) + self._gaps[-1]

    def _kept_positions(self, tokens: list[str]) -> list[int]:
        """Where each token of a shortened list stood; deletion may re-capitalise the new first word."""
        positions, start = [], 0
        for token in tokens:
            folded = token.casefold()
            while start < len(self.tokens) and self.tokens[start].casefold() != folded:
                start += 1
            if start == len(self.tokens):
                raise RuntimeError("nlpaug returned tokens that are not a subsequence of the original text")
            positions.append(start)
            start += 1
        return positions


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


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _model_location(name: str, resolve: Callable[[str], Path]) -> str:
    """A local model directory (relative to the recipe) as an absolute path, or a hub id unchanged."""
    if not is_local_model(name):
        return name
    path = resolve(str(Path(name).expanduser()))
    if not path.is_dir():
        raise ValueError(f"model directory not found: {name} (relative paths are relative to the recipe file)")
    return str(path)


def _synonym(params: dict, resolve) -> WordRewriter:
    from fttool.augment.wordnet import ProtectedSynonymAug, resources

    return WordRewriter(ProtectedSynonymAug(params["aug_p"]), resources())


def _random(params: dict, resolve) -> WordRewriter:
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
    augmenter = WordSwapAug(action=params["action"], aug_p=params["aug_p"], tokenizer=tokenizer.split,
                            reverse_tokenizer=tokenizer.join, stopwords_regex=SKIP_TOKEN)
    return WordRewriter(augmenter, {})


# config.json model_type -> the nlpaug model family whose mask token and subword prefix it uses
MASKED_LM_FAMILIES = {"bert": "bert", "distilbert": "bert", "roberta": "roberta"}


def _contextual(params: dict, resolve) -> ShieldedRewriter:
    import nlpaug.augmenter.word as naw
    import nlpaug.model.lang_models as nml
    from transformers import AutoConfig

    location = _model_location(params["model_path"], resolve)
    model_type = AutoConfig.from_pretrained(location).model_type
    if model_type not in MASKED_LM_FAMILIES:
        raise ValueError(f"contextual augmentation supports masked language models of type "
                         f"{', '.join(MASKED_LM_FAMILIES)}; {params['model_path']} is '{model_type}'")
    family = MASKED_LM_FAMILIES[model_type]
    base = {"bert": nml.Bert, "roberta": nml.Roberta}[family]

    class MaskedLanguageModel(base):
        """nlpaug's model, for transformers 5 tokenizers: nlpaug tells fast tokenizers by a class name
        ending in 'Fast', which they no longer have, and then calls methods that no longer exist."""

        def token2id(self, token):
            return self.tokenizer.convert_tokens_to_ids(token)

        def id2token(self, _id):
            return self.tokenizer.convert_ids_to_tokens(_id)

    class ContextualWordEmbsAug(naw.ContextualWordEmbsAug):
        # Same class name on purpose: nlpaug batches a list of texts only for augmenters it knows by name.
        @classmethod
        def get_model(cls, model_path, model_type, device="cuda", force_reload=False, batch_size=32, top_k=None,
                      silence=True, use_custom_api=True):
            # Built here rather than taken from nlpaug's cache, which is keyed on the directory's base name only.
            return MaskedLanguageModel(model_path, top_k=top_k, batch_size=batch_size, device=device,
                                       silence=silence)

    device = _device()
    augmenter = ContextualWordEmbsAug(model_path=location, model_type=family, action="substitute",
                                      aug_p=params["aug_p"], top_k=params["top_k"], batch_size=params["batch_size"],
                                      device=device, stopwords_regex=MARKER_PIECE)
    return ShieldedRewriter(augmenter, {"masked_lm": params["model_path"], "device": device})


def _back_translation(params: dict, resolve) -> ShieldedRewriter:
    from nlpaug.augmenter.word import BackTranslationAug

    device = _device()
    augmenter = BackTranslationAug(from_model_name=_model_location(params["from_model"], resolve),
                                   to_model_name=_model_location(params["to_model"], resolve), device=device,
                                   batch_size=params["batch_size"], max_length=params["max_length"])
    return ShieldedRewriter(augmenter, {"translation_models": [params["from_model"], params["to_model"]],
                                        "device": device})


@dataclass(frozen=True)
class Method:
    """One augmentation method: defaults of its own parameters, its builder, and which parameters name models."""
    defaults: Mapping[str, Any]
    build: Callable[[dict, Callable[[str], Path]], WordRewriter | ShieldedRewriter]
    model_keys: tuple[str, ...] = ()


# Defaults of method-specific parameters live here because the recipe schema can only give one default
# per key for every method; schemas/recipe.schema.json names them in each key's description.
METHODS: dict[str, Method] = {
    "synonym": Method({"aug_p": 0.2}, _synonym),
    "random": Method({"action": "swap", "aug_p": 0.2}, _random),
    # A small top_k keeps to the words the model finds likely, which more often keep the meaning.
    "contextual": Method({"aug_p": 0.2, "top_k": 20, "batch_size": 32}, _contextual, ("model_path",)),
    "back_translation": Method({"batch_size": 32, "max_length": 300}, _back_translation, ("from_model", "to_model")),
}
