"""mednet's MONAI bundles: where they are, what they take (one reader), running, training, sharing.

- :mod:`~mednet.bundles.locate`: :data:`BUNDLES_DIR`, :func:`bundle_path`, :func:`list_bundles`;
- :mod:`~mednet.bundles.spec`: :class:`BundleSpec`, the one reader of a bundle's configuration
  (sequences, classes, label table, lesion values, version, weights) and safe weight loading;
- :mod:`~mednet.bundles.run`: :func:`run_bundle` (``python -m monai.bundle run`` in-process),
  :func:`train_bundle` (resuming an interrupted run: :func:`interrupted_run`), :func:`console_to`;
- :mod:`~mednet.bundles.archive`: :func:`bundle_table`, :func:`export_bundle`, :func:`install_weights`;
- :mod:`~mednet.bundles.cards`: :func:`write_benchmark_section` (model cards).
"""

import importlib

__all__ = [
    "BUNDLES_DIR",
    "BundleSpec",
    "UnsafeCheckpointError",
    "bundle_path",
    "bundle_table",
    "console_to",
    "export_bundle",
    "install_weights",
    "interrupted_run",
    "list_bundles",
    "load_state_dict",
    "run_bundle",
    "train_bundle",
    "write_benchmark_section",
]

#: name -> submodule; names are imported on first use, so that ``mednet --help`` (which reads
#: the bundle folder's location) does not import PyTorch.
_WHERE = {
    "BUNDLES_DIR": "locate", "bundle_path": "locate", "list_bundles": "locate",
    "BundleSpec": "spec", "UnsafeCheckpointError": "spec", "load_state_dict": "spec",
    "console_to": "run", "run_bundle": "run", "train_bundle": "run", "interrupted_run": "run",
    "bundle_table": "archive", "export_bundle": "archive", "install_weights": "archive",
    "write_benchmark_section": "cards",
}  # fmt: skip


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"mednet.bundles.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mednet.bundles' has no attribute {name!r}")
