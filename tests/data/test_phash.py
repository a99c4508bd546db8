"""Perceptual hashes and the near-duplicate search."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from conftest import pattern
from imgclf.data.phash import hamming, near_duplicate_pairs, phash


def brute_force(hashes, max_distance):
    pairs = []
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            d = hamming(int(hashes[i]), int(hashes[j]))
            if d <= max_distance:
                pairs.append((i, j, d))
    return sorted(pairs)


@pytest.mark.parametrize("max_distance", [0, 1, 2, 4, 6])
def test_multi_index_search_equals_brute_force(max_distance):
    rng = np.random.default_rng(max_distance)
    base = rng.integers(0, 2**63, size=60, dtype=np.uint64)
    # Plant close relatives: flip a few random bits of some hashes.
    relatives = []
    for h in base[:30]:
        flips = rng.choice(64, size=rng.integers(0, 8), replace=False)
        value = int(h)
        for bit in flips:
            value ^= 1 << int(bit)
        relatives.append(value)
    hashes = np.array(list(base) + relatives, dtype=np.uint64)
    found = [tuple(map(int, row)) for row in near_duplicate_pairs(hashes, max_distance)]
    assert found == brute_force(hashes, max_distance)


@pytest.mark.parametrize("seed", range(10))
def test_hash_survives_resizing_and_mild_blur_but_separates_images(seed):
    image = pattern(seed, 64)
    similar = image.resize((48, 48), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(0.5))
    assert hamming(phash(image), phash(similar)) <= 6
    assert hamming(phash(image), phash(pattern(seed + 100, 64))) >= 20


def test_no_pairs_for_fewer_than_two_hashes():
    assert near_duplicate_pairs(np.array([5], dtype=np.uint64), 3).shape == (0, 3)
