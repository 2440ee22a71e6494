"""Fusion as a MONAI dictionary transform, for bundle post-processing."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from mednet.fusion.case import CaseFusion

__all__ = ["FuseBranchesd"]


class FuseBranchesd(MapTransform):
    """Fuse a case's per-sequence probabilities into ``output_key`` with a :class:`CaseFusion`.

    Each key holds one sequence's ``(C,)`` class probabilities (a list, array or tensor,
    e.g. aggregated over the case's slices); the key's name is the source name. The
    output is the JSON-ready record :meth:`CaseFusion.__call__` returns (fused
    probabilities, class, rule, weights, missing sources).

    Args:
        keys: the sequences' probability keys (e.g. ``["t1c", "t2"]``).
        fusion: the configured :class:`CaseFusion`.
        readings_key: where the case's clinicians' readings are (``{role: reading}``), if any.
        output_key: where the record goes.
        allow_missing_keys: fuse the sequences present when some are missing (a sequence
            not acquired); otherwise a missing one is an error.
    """

    def __init__(
        self,
        keys: KeysCollection,
        fusion: CaseFusion,
        readings_key: str = "clinicians",
        output_key: str = "fusion",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.fusion, self.readings_key, self.output_key = fusion, readings_key, output_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """The case with ``output_key`` set."""
        d = dict(data)
        branches: dict[str, Sequence[float]] = {}
        for key in self.key_iterator(d):
            value = d[key]
            branches[str(key)] = (value.detach().cpu().numpy() if isinstance(value, torch.Tensor)
                                  else np.asarray(value, dtype=float)).reshape(-1).tolist()  # fmt: skip
        if not branches:
            raise ValueError(f"FuseBranchesd: none of the keys {list(self.keys)} is in the case")
        d[self.output_key] = self.fusion(branches, d.get(self.readings_key))
        return d
