"""Training recipes: the reference weights mednet ships (:mod:`~mednet.training.reference`)."""
