"""Counter-based random numbers shared by the NumPy twins and the C++ core (csrc/rng.h).

Every random number is a pure function of (seed, stream, a, b), so the C++ core and NumPy draw
identical values, and a result never depends on how work is split over threads:

    mix(z)                = splitmix64 finalizer (uint64 wraparound)
    key(seed, stream, a, b) = mix(mix(mix(seed + 0x9E3779B97F4A7C15 * (stream + 1)) + a) + b)
    uniform(...)          = (key >> 11) * 2**-53                       in [0, 1), float64
    normal(seed, s, a, b) = sqrt(-2 ln(1 - u1)) * cos(2 pi u2)         Box-Muller,
                            u1 = uniform(seed, s, a, 2b), u2 = uniform(seed, s, a, 2b + 1)

``stream`` separates random quantities (table ``STREAMS`` in ``traction.ops.reference``); ``a`` is
usually the sample index in the batch and ``b`` a counter within the sample.
"""
from __future__ import annotations

import numpy as np

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


def as_seed(seed: int) -> int:
    """A Python integer seed reduced to uint64 (negative seeds wrap, like C++ would)."""
    return int(seed) & _MASK64


def _mix(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> _U64(30))
    z = z * _M1
    z = z ^ (z >> _U64(27))
    z = z * _M2
    return z ^ (z >> _U64(31))


def key(seed: int, stream: int, a, b) -> np.ndarray:
    """uint64 key for every broadcast pair of counters (a, b)."""
    a = np.asarray(a).astype(np.uint64)
    b = np.asarray(b).astype(np.uint64)
    # uint64 arithmetic wraps by design; silence NumPy's overflow warning for scalars.
    with np.errstate(over="ignore"):
        base = np.asarray(_U64(as_seed(seed)) + _GOLDEN * _U64(int(stream) + 1), dtype=np.uint64)
        return _mix(_mix(_mix(base) + a) + b)


def uniform(seed: int, stream: int, a, b) -> np.ndarray:
    """float64 uniform numbers in [0, 1), one per broadcast (a, b)."""
    return (key(seed, stream, a, b) >> _U64(11)).astype(np.float64) * (2.0 ** -53)


def normal(seed: int, stream: int, a, b) -> np.ndarray:
    """float64 standard normal numbers, one per broadcast (a, b) (Box-Muller on counters 2b, 2b+1)."""
    b = np.asarray(b).astype(np.uint64)
    with np.errstate(over="ignore"):
        u1 = uniform(seed, stream, a, b * _U64(2))
        u2 = uniform(seed, stream, a, b * _U64(2) + _U64(1))
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)
