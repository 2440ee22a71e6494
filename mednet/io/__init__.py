"""Reading, validating, resampling and writing images; datalists and patient-level splits.

The boundary between mednet and the files a researcher brings: every image enters
through :func:`read_image` (or :func:`load_case` for a multi-sequence case) and leaves
through :func:`write_image`; every cohort enters through :func:`discover_cases` or
:func:`read_manifest` and is split by patient with :func:`build_datalist`.
"""

from mednet.io.cases import LoadedCase, load_case
from mednet.io.datalist import (
    Discovery,
    SliceSplitWarning,
    build_datalist,
    datalist_cases,
    discover_cases,
    load_datalist,
    read_manifest,
    save_datalist,
)
from mednet.io.grid import Grid, fov_overlap, resample_to_grid
from mednet.io.nifti_reader import NiftiReader
from mednet.io.read import ImageKind, load_raw, read_image
from mednet.io.sequences import LABEL_KEY, SEQUENCE_KEYS, normalise_sequence_key
from mednet.io.sitk_reader import SimpleITKReader
from mednet.io.splits import PARTITIONS, check_no_leakage, select_fold, slice_split_partitions, split_cases
from mednet.io.write import write_image

__all__ = [
    "LABEL_KEY",
    "PARTITIONS",
    "SEQUENCE_KEYS",
    "Discovery",
    "Grid",
    "ImageKind",
    "LoadedCase",
    "NiftiReader",
    "SimpleITKReader",
    "SliceSplitWarning",
    "build_datalist",
    "check_no_leakage",
    "datalist_cases",
    "discover_cases",
    "fov_overlap",
    "load_case",
    "load_datalist",
    "load_raw",
    "normalise_sequence_key",
    "read_image",
    "read_manifest",
    "resample_to_grid",
    "save_datalist",
    "select_fold",
    "slice_split_partitions",
    "split_cases",
    "write_image",
]
