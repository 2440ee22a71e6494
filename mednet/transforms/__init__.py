"""MONAI transforms: array classes in ``array``, dictionary classes (``...d``) in ``dictionary`` and ``grading``."""

from mednet.transforms.array import FieldOfViewFill, RandFieldOfViewCut, RandSequenceDropout, ResampleToReference
from mednet.transforms.dictionary import (
    FieldOfViewFilld,
    LoadCased,
    LoadSequencesd,
    Localised,
    RandFieldOfViewCutd,
    RandSequenceDropoutd,
    ResampleToReferenced,
    Spacingd,
    WriteLocalisationd,
)
from mednet.transforms.grading import ClassIndexd, LesionFeaturesd, LesionSlicesd
from mednet.transforms.invert import InvertLabelsd

__all__ = [
    "ClassIndexd",
    "FieldOfViewFill",
    "FieldOfViewFilld",
    "InvertLabelsd",
    "LesionFeaturesd",
    "LesionSlicesd",
    "LoadCased",
    "LoadSequencesd",
    "Localised",
    "RandFieldOfViewCut",
    "RandFieldOfViewCutd",
    "RandSequenceDropout",
    "RandSequenceDropoutd",
    "ResampleToReference",
    "ResampleToReferenced",
    "Spacingd",
    "WriteLocalisationd",
]
