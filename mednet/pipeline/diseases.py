"""The three diseases as configurations of one pipeline: which bundles, which sequences.

A disease names its localisation (segmentation) bundle and its grading (classification)
bundle; everything else (sequences, classes, label table, lesion values) is read from the
bundles themselves by :class:`mednet.bundles.BundleSpec`, so that the pipeline and the
bundles cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mednet.options import choose

if TYPE_CHECKING:
    from mednet.bundles.spec import BundleSpec

__all__ = ["DISEASES", "DiseaseSpec", "disease_spec"]

#: disease -> (localisation bundle, grading bundle)
DISEASES = {
    "glioma": ("glioma_mri_segmentation", "glioma_mri_classification"),
    "cpa": ("cpa_mri_segmentation", "cpa_mri_classification"),
    "neuroblastoma": ("neuroblastoma_mri_segmentation", "neuroblastoma_mri_classification"),
}


@dataclass(frozen=True)
class DiseaseSpec:
    """What the pipeline runs for one disease.

    Attributes:
        name: the disease.
        localisation: the segmentation bundle.
        grading: the classification bundle.
    """

    name: str
    localisation: BundleSpec
    grading: BundleSpec

    def __post_init__(self) -> None:
        first, other = self.localisation.sequences[0], self.grading.sequences[0]
        if first != other:
            raise ValueError(
                f"{self.name}: the bundles disagree on the reference sequence: {self.localisation.name} puts "
                f"{first!r} first, {self.grading.name} {other!r}; the label map must be on the grading's grid"
            )

    def with_settings(self, settings: Mapping[str, Mapping] | None) -> DiseaseSpec:
        """This disease with the sequences that config overrides (bundle name -> overrides) give its bundles."""
        settings = settings or {}
        return DiseaseSpec(self.name, self.localisation.with_overrides(settings.get(self.localisation.name)),
                           self.grading.with_overrides(settings.get(self.grading.name)))  # fmt: skip

    @property
    def sequences(self) -> tuple[str, ...]:
        """Every sequence either stage reads, the localisation's first (its first is the reference)."""
        return tuple(dict.fromkeys([*self.localisation.sequences, *self.grading.sequences]))

    @property
    def branches(self) -> tuple[str, ...]:
        """The grading branches (the sequences with a probability of their own)."""
        return self.grading.sequences

    @property
    def classes(self) -> tuple[str, ...]:
        """The grading classes."""
        return self.grading.classes

    @property
    def versions(self) -> dict[str, str]:
        """Bundle name -> version."""
        return {b.name: b.version for b in (self.localisation, self.grading)}

    @property
    def weights_sha256(self) -> dict[str, str | None]:
        """Bundle name -> SHA-256 of its shipped weights (``models/model.pt``; None where there are none).

        Figures written with it (``scripts/evaluate_reference.py``, ``scripts/benchmark_realdata.py``)
        name the weights they measured, whatever the version said then.
        """
        from mednet.checksum import file_sha256

        bundles = (self.localisation, self.grading)
        return {b.name: file_sha256(b.weights) if b.weights.is_file() else None for b in bundles}


def disease_spec(disease: str, bundles: os.PathLike | str | None = None) -> DiseaseSpec:
    """The :class:`DiseaseSpec` of ``disease`` with bundles from ``bundles`` (default: mednet's).

    Raises:
        ValueError: an unknown disease (with the closest name), or bundles that disagree.
        FileNotFoundError: a bundle folder that is not there.
    """
    from mednet.bundles.locate import bundle_path
    from mednet.bundles.spec import BundleSpec

    name = choose(disease, DISEASES, "disease")
    localisation, grading = (BundleSpec.load(bundle_path(b, bundles)) for b in DISEASES[name])
    return DiseaseSpec(name, localisation, grading)
