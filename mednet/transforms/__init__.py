"""MONAI transform pairs: array classes in ``array``, dictionary classes (``...d``) in ``dictionary``."""

from mednet.transforms.array import ResampleToReference
from mednet.transforms.dictionary import ResampleToReferenced, WriteLocalisationd

__all__ = ["ResampleToReference", "ResampleToReferenced", "WriteLocalisationd"]
