"""MONAI transforms: array classes in ``array``, dictionary classes (``...d``) in ``dictionary`` and ``grading``."""

from mednet.transforms.array import ResampleToReference
from mednet.transforms.dictionary import LoadSequencesd, Localised, ResampleToReferenced, Spacingd, WriteLocalisationd
from mednet.transforms.grading import ClassIndexd, LesionCropd, LesionFeaturesd, LesionSlicesd

__all__ = [
    "ClassIndexd",
    "LesionCropd",
    "LesionFeaturesd",
    "LesionSlicesd",
    "LoadSequencesd",
    "Localised",
    "ResampleToReference",
    "ResampleToReferenced",
    "Spacingd",
    "WriteLocalisationd",
]
