"""Reproductions of the seed papers' methods that the pipeline does not run.

The benchmarks compare them with what the pipeline does instead (``SEEDS.md`` names the
papers). Nothing under :mod:`mednet.localisation`, :mod:`mednet.grading` or
:mod:`mednet.pipeline` imports from here.

- :mod:`~mednet.papers.compartment`: paper C's body-compartment classifier (LeNet-style
  CNN features + RBF SVM on histogram-equalised slices through the primary tumour),
  compared by ``scripts/benchmark_localisation.py`` with the compartment that the lesion
  table derives from the segmentation.
"""
