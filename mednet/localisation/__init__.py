"""Localisation stage post-processing: organ clean-up, the lesion table, the case's output files.

Also the neuroblastoma paper's body-compartment classifier (CNN features + SVM), an
option beside the compartment derived from the segmentation.
"""

from mednet.localisation.compartment import (
    COMPARTMENTS,
    PRIMARY_TUMOUR_LABEL,
    CompartmentClassifier,
    CompartmentCNN,
    compartment_dataset,
    enhance_slice,
    slices_through_lesion,
)
from mednet.localisation.lesions import TABLE_COLUMNS, find_lesions, largest_diameter_mm, write_lesion_table
from mednet.localisation.organs import clean_organs
from mednet.localisation.outputs import (
    LabelScheme,
    LocalisationResult,
    localise_from_probabilities,
    write_localisation,
)

__all__ = [
    "COMPARTMENTS",
    "PRIMARY_TUMOUR_LABEL",
    "TABLE_COLUMNS",
    "CompartmentCNN",
    "CompartmentClassifier",
    "LabelScheme",
    "LocalisationResult",
    "clean_organs",
    "compartment_dataset",
    "enhance_slice",
    "find_lesions",
    "largest_diameter_mm",
    "localise_from_probabilities",
    "slices_through_lesion",
    "write_lesion_table",
    "write_localisation",
]
