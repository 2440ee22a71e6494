"""Synthetic cohorts with ground truth, for the demo, the tests and the benchmarks."""

from mednet.synthetic.toy import write_toy_brats_cohort

__all__ = ["write_toy_brats_cohort"]
