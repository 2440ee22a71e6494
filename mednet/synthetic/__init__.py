"""Synthetic multi-sequence MRI cohorts with ground truth, for the demo, tests and benchmarks.

Three diseases, each a module that builds one phantom per case (``glioma``, ``cpa``,
``neuroblastoma``); :mod:`~mednet.synthetic.phantom` turns a phantom into MRI volumes,
:mod:`~mednet.synthetic.cohort` writes a cohort, :mod:`~mednet.synthetic.preview`
draws a montage to look at.
"""

from mednet.synthetic.cohort import DISEASES, SIZES, Cohort, generate_cohort

__all__ = ["DISEASES", "SIZES", "Cohort", "generate_cohort"]
