"""mednet: localisation, grading and fusion for multi-sequence MRI, built on MONAI.

Research use only; not for clinical decisions.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
