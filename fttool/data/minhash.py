"""MinHash signatures and LSH band hashes of many records at once, equal to datasketch's value for value.

datasketch's `MinHash.update_batch` hashes each shingle with SHA-1 in Python, then applies its permutations one
record at a time. Here the SHA-1 prefixes of a whole batch are joined into one numpy array and permuted and
reduced together (`np.minimum.reduceat`), with datasketch's own permutations and finaliser constants, so the
signatures, and so every dedup and leakage decision, stay exactly those of datasketch's default MinHash
(scheme affine32, seed 1). tests/test_dedup.py checks the equality.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

NUM_PERM = 128
SHINGLE_WORDS = 3
# (false positive, false negative) weights for choosing LSH bands: candidates are confirmed against
# the signatures, so missing a near duplicate costs more than checking an extra candidate.
LSH_RECALL_WEIGHTS = (0.1, 0.9)
SIGNATURE_DTYPE = np.dtype(np.uint32)  # datasketch's affine32 scheme
# Shingles permuted at a time: bounds the (shingles x NUM_PERM) matrix to about 10 MiB.
SHINGLES_PER_BLOCK = 20_000
# MurmurHash3's 32-bit finaliser, as datasketch pre-mixes each shingle hash (datasketch.minhash._FMIX_CONSTANTS).
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))


def shingles(text: str) -> list[bytes]:
    """The word 3-grams of a text, casefolded (a text of fewer words is one shingle); repeats are harmless."""
    words = text.casefold().split()
    if len(words) < SHINGLE_WORDS:
        return [" ".join(words).encode("utf-8")]
    return [" ".join(words[i:i + SHINGLE_WORDS]).encode("utf-8") for i in range(len(words) - SHINGLE_WORDS + 1)]


@lru_cache(maxsize=1)
def permutations() -> tuple[np.ndarray, np.ndarray]:
    """datasketch's (a, b) for NUM_PERM affine32 permutations of its default seed, 1 (datasketch.MinHash.
    _init_permutations), drawn here so that engine workers need not import datasketch, which imports scipy."""
    generator = np.random.RandomState(1)
    odd = generator.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)  # bijective
    return odd, generator.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)


# Gauss-Legendre nodes for the banding integrals: exact for polynomials up to degree 2 * 65 - 1, and the integrands
# below have degree bands * rows <= NUM_PERM.
_GAUSS_NODES = 65


@lru_cache(maxsize=8)
def lsh_bands(threshold: float) -> tuple[int, int]:
    """(bands, rows) that datasketch's MinHashLSH picks for the threshold with LSH_RECALL_WEIGHTS.

    datasketch minimises the weighted false positive and false negative areas (`datasketch.lsh._optimal_param`,
    integrated with scipy's quad); the integrands are polynomials, which Gauss-Legendre integrates exactly, so
    the choice is the same without importing datasketch and scipy (50 MiB) into the stage's process.
    tests/test_data_scale.py compares the two over the whole range of thresholds.
    """
    nodes, weights = np.polynomial.legendre.leggauss(_GAUSS_NODES)
    below = (nodes + 1) * threshold / 2  # nodes on [0, threshold]
    above = threshold + (nodes + 1) * (1 - threshold) / 2  # on [threshold, 1]
    best, best_error = (0, 0), float("inf")
    for bands in range(1, NUM_PERM + 1):
        rows = np.arange(1, NUM_PERM // bands + 1, dtype=float)[:, None]
        false_positive = (1 - (1 - below ** rows) ** bands) @ weights * threshold / 2
        false_negative = (1 - above ** rows) ** bands @ weights * (1 - threshold) / 2
        errors = false_positive * LSH_RECALL_WEIGHTS[0] + false_negative * LSH_RECALL_WEIGHTS[1]
        for row, error in enumerate(errors.tolist()):
            if error < best_error:
                best, best_error = (bands, row + 1), error
    # Near 1 the best is a single band, which datasketch refuses; two bands of half the signature each then.
    return best if best[0] >= 2 else (2, NUM_PERM // 2)


@lru_cache(maxsize=8)
def band_multipliers(bands: int, rows: int) -> np.ndarray:
    """Odd 64-bit multipliers, one per band value: sum(value * multiplier) mod 2**64 hashes a band."""
    halves = np.random.default_rng(0).integers(0, 2**63, size=(bands, rows), dtype=np.uint64)
    return halves * np.uint64(2) + np.uint64(1)


def _fmix32(values: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX32
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    return values ^ (values >> s3)


def signatures(shingle_lists: list[list[bytes]]) -> np.ndarray:
    """One MinHash signature per record (rows of NUM_PERM uint32), given each record's non-empty shingles."""
    a, b = permutations()
    out = np.empty((len(shingle_lists), NUM_PERM), dtype=SIGNATURE_DTYPE)
    start = 0
    while start < len(shingle_lists):
        stop, total = start, 0
        while stop < len(shingle_lists) and (stop == start or total + len(shingle_lists[stop]) <= SHINGLES_PER_BLOCK):
            total += len(shingle_lists[stop])
            stop += 1
        block = shingle_lists[start:stop]
        prefixes = b"".join(hashlib.sha1(shingle).digest()[:4] for shingles_of in block for shingle in shingles_of)
        hashed = _fmix32(np.frombuffer(prefixes, dtype="<u4").astype(SIGNATURE_DTYPE))
        permuted = hashed[:, None] * a + b  # wraps modulo 2**32, as datasketch's affine32 does
        offsets = np.cumsum([0] + [len(shingles_of) for shingles_of in block[:-1]])
        out[start:stop] = np.minimum.reduceat(permuted, offsets, axis=0)
        start = stop
    return out


def band_hashes(signature_rows: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One signed 64-bit hash per band of each signature; each band has its own multipliers, so equal values in two
    bands differ."""
    banded = signature_rows[:, :bands * rows].reshape(len(signature_rows), bands, rows).astype(np.uint64)
    return (banded * band_multipliers(bands, rows)).sum(axis=2, dtype=np.uint64).view(np.int64)
