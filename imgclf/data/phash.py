"""Perceptual hashing and near-duplicate search.

The hash is the classic DCT pHash: the image in grayscale, resized to 32x32,
its 2-D DCT, the 8x8 lowest frequencies (without the DC term's influence on the
threshold) compared with their median, giving 64 bits. Two images whose hashes
differ in at most a few bits look alike to a person.

Near-duplicate search uses multi-index hashing: split the 64 bits into
``max_distance + 1`` chunks; by the pigeonhole principle two hashes within
``max_distance`` bits agree exactly on at least one chunk, so only images that
share a chunk value are compared. The cost grows linearly with the number of
images (for a fixed bucket occupancy), not quadratically.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.fft import dctn

HASH_BITS = 64
_DCT_SIZE = 32
_LOW = 8


def phash(image: Image.Image) -> int:
    """Return the 64-bit DCT perceptual hash of an image.

    Args:
        image: A decoded Pillow image of any mode.

    Returns:
        The hash as an unsigned 64-bit integer.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Pillow's convert("L") clips these to 255: most hashes would collide.
        # Resize in float and keep the structure (the hash ignores the scale).
        values = np.asarray(image, dtype=np.float32)
        gray = Image.fromarray(values, mode="F")
    else:
        gray = image.convert("L") if image.mode != "L" else image
    small = gray.resize((_DCT_SIZE, _DCT_SIZE), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.float32)
    low = dctn(pixels, norm="ortho")[:_LOW, :_LOW].ravel()
    # The DC term (mean brightness) is excluded from the median so that the
    # threshold follows the image's structure, not its overall brightness.
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """Find every pair of hashes within ``max_distance`` bits of each other.

    Args:
        hashes: 1-D array of uint64 hashes, one per image.
        max_distance: Largest Hamming distance that counts as a near-duplicate
            (0 finds only identical hashes).

    Returns:
        An int64 array of shape (n_pairs, 2) of indices ``i < j``, sorted,
        with their distance in a third column.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    if n < 2 or max_distance < 0:
        return np.empty((0, 3), dtype=np.int64)
    n_chunks = min(max_distance + 1, HASH_BITS)
    bounds = np.linspace(0, HASH_BITS, n_chunks + 1).astype(int)
    candidates: list[np.ndarray] = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        width = int(hi - lo)
        mask = np.uint64((1 << width) - 1)
        keys = (hashes >> np.uint64(lo)) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, n])
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
            members = order[start : start + size]
            i, j = np.triu_indices(size, k=1)
            candidates.append(np.stack([members[i], members[j]], axis=1))
    if not candidates:
        return np.empty((0, 3), dtype=np.int64)
    pairs = np.concatenate(candidates)
    pairs.sort(axis=1)
    pairs = np.unique(pairs, axis=0)
    distances = np.bitwise_count(hashes[pairs[:, 0]] ^ hashes[pairs[:, 1]])
    keep = distances <= max_distance
    return np.column_stack([pairs[keep], distances[keep].astype(np.int64)])
