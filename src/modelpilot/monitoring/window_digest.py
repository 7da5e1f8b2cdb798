"""A digest of what a window's drift verdict is made of, so that an unchanged window is not
judged again.

The server judges every watched version's window every monitoring round (2 s), whether or not
a row came or went since: idle, a server of 41 models and 880 features spent a fifth of a
core of its serving process on verdicts it had already given. ``ProfileBinning.report`` keeps
its last verdict with the digest of the window it judged, and gives it again while the digest
is the same. Rows that age out, or arrive, change the counts, and so the digest.
"""

from __future__ import annotations

import hashlib

import numpy as np

from modelpilot.monitoring.numeric_bins import to_float


def window_digest(
    counts: np.ndarray, sums: np.ndarray, recent: np.ndarray | None, columns: np.ndarray
) -> bytes:
    """A digest of a window's flat ``counts`` and ``sums`` and of the values of its numeric
    features ``columns`` among its rows ``recent`` (which the KS test reads, where the window
    is small): windows of the same digest have the same verdict.

    The rows count apart from the counts: a row that leaves and one that comes may bin alike
    (and a discrete feature's sums stay the same), and still move a KS test."""
    digest = hashlib.blake2b(digest_size=20)
    for part in (counts, sums):
        digest.update(f"{part.dtype.str}{part.shape}".encode())
        digest.update(np.ascontiguousarray(part).tobytes())
    if recent is None:
        digest.update(b"no rows")
    else:
        values = recent[:, columns]
        if values.dtype.kind not in "fiub":  # numbers beside text: as ``count`` reads them
            try:
                values = values.astype(np.float64)
            except (TypeError, ValueError):
                values = to_float(values)
        values = np.ascontiguousarray(values, dtype=np.float64)
        digest.update(f"rows{values.shape}".encode())
        digest.update(values.tobytes())
    return digest.digest()
