"""Localisation stage post-processing: organ clean-up, the lesion table, the case's output files.

(The neuroblastoma paper's CNN + SVM compartment classifier, which the pipeline does not
run, is in :mod:`mednet.papers.compartment`.)
"""

from mednet.localisation.lesions import TABLE_COLUMNS, find_lesions, largest_diameter_mm, write_lesion_table
from mednet.localisation.organs import clean_organs
from mednet.localisation.outputs import (
    LabelScheme,
    LocalisationResult,
    decide_labels,
    localise_from_labels,
    localise_from_probabilities,
    write_localisation,
)

__all__ = [
    "TABLE_COLUMNS",
    "LabelScheme",
    "LocalisationResult",
    "clean_organs",
    "decide_labels",
    "find_lesions",
    "largest_diameter_mm",
    "localise_from_labels",
    "localise_from_probabilities",
    "write_lesion_table",
    "write_localisation",
]
