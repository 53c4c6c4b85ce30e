"""Compressed COCO RLE strings checked without decoding them to masks (numba; numpy in, no torch).

pycocotools refuses to decode (``Invalid RLE mask representation``) an RLE whose run lengths
add up to more than height * width; its ``area``, ``toBbox`` and ``iou`` read such strings
without a word. :func:`rle_string_valid` applies the decoder's rule to the string itself, read
as pycocotools' ``rleFrString`` reads it (5 bits per character from '0', 0x20 continues a
number, 0x10 in a number's last character makes it negative, from the third run on each
number is a difference to the run two before), so files can be checked without dense masks.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["first_invalid_rle", "rle_string_valid"]


@njit(cache=True, nogil=True)
def rle_string_valid(counts: np.ndarray, n_pixels: int) -> bool:
    """Whether pycocotools decodes the compressed RLE ``counts`` (uint8) of an image of ``n_pixels``.

    Example:
        >>> import numpy as np
        >>> [rle_string_valid(np.frombuffer(s, np.uint8), 16) for s in (b"`0", b"!!!!", b"d0")]
        [True, False, False]
    """
    n = counts.shape[0]
    runs = np.zeros(n + 1, np.int64)
    m = 0
    p = 0
    total = 0
    while p < n and counts[p] != 0:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n or counts[p] == 0:
                return False  # the string ends inside a number
            c = np.int64(counts[p])
            if c > 127:  # a C char is signed
                c -= 256
            c -= 48
            x |= (c & 0x1F) << (5 * k)
            more = (c & 0x20) != 0
            p += 1
            k += 1
            if k > 12:
                return False
            if not more and (c & 0x10) != 0:
                x |= np.int64(-1) << (5 * k)
        if m > 2:
            x += runs[m - 2]
        x &= 0xFFFFFFFF  # stored as a C uint
        runs[m] = x
        m += 1
        total += x
        if total > n_pixels:
            return False
    return True


@njit(cache=True, nogil=True)
def first_invalid_rle(counts: np.ndarray, offsets: np.ndarray, n_pixels: np.ndarray) -> int:
    """Index of the first RLE that :func:`rle_string_valid` refuses, or -1: every string in one call.

    ``counts`` (uint8) holds the strings one after the other, string i at
    ``counts[offsets[i]:offsets[i + 1]]``; ``n_pixels[i]`` is its image's height * width.

    Example:
        >>> import numpy as np
        >>> strings = [b"`0", b"d0"]
        >>> buf = np.frombuffer(b"".join(strings), np.uint8)
        >>> first_invalid_rle(buf, np.array([0, 2, 4]), np.array([16, 16]))
        1
    """
    for i in range(n_pixels.shape[0]):
        if not rle_string_valid(counts[offsets[i] : offsets[i + 1]], n_pixels[i]):
            return i
    return -1
