"""Engine pieces for the classification bundles: multi-sequence batches, branch losses, metrics, outputs.

MONAI's ``SupervisedTrainer`` / ``SupervisedEvaluator`` pass ``batch["image"]`` to the
network. A :class:`mednet.networks.MultiSequenceClassifier` takes one tensor per
sequence instead, so the bundles give the engines:

- :class:`SequenceBatch` as ``prepare_batch``: the sequences (and extra inputs such as
  lesion features) as a dict, the class index as the target;
- :class:`BranchLoss` as ``loss_function``: one loss per branch, summed;
- :func:`branch_metrics`: slice-level ROC AUC per branch and for the fused output,
  ``val_slice_auc_<sequence>``, which the TensorBoard handler draws one curve each;
- :class:`BranchwiseBest`: an evaluator handler that keeps each branch's weights from
  the epoch where that branch's own validation AUC was best;
- :class:`GradingWriter`: an evaluator handler that collects every slice's probabilities
  with its case and writes slice rows and patient-level (aggregated) predictions.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import ROCAUC
from monai.utils import CommonKeys

from mednet.fusion.case import CaseFusion
from mednet.fusion.rules import FusionMethod, fuse
from mednet.grading.case import class_probabilities, grade_case
from mednet.grading.losses import make_criterion
from mednet.grading.ood import fitted_check, keeping_features
from mednet.io.atomic import atomic_path, write_json_atomic

__all__ = ["BranchLoss", "BranchwiseBest", "GradingWriter", "SequenceBatch", "branch_metrics", "fused_probabilities"]


class SequenceBatch:
    """``prepare_batch`` for multi-sequence classifiers: ``({seq: tensor}, target)`` on the device.

    Args:
        keys: the batch keys the network takes (sequence names, plus e.g. ``"features"``).
        target_key: the class index key (from :class:`mednet.transforms.ClassIndexd`); a
            batch without it (inference) gets no target.
    """

    def __init__(self, keys: Sequence[str], target_key: str = "target"):
        self.keys, self.target_key = list(keys), target_key

    def __call__(self, batch: Mapping, device=None, non_blocking: bool = False, **kwargs):
        """Move the inputs (and the target) to ``device``."""
        missing = [k for k in self.keys if k not in batch]
        if missing:
            raise KeyError(f"batch lacks {missing}; it has {sorted(map(str, batch))}")
        inputs = {k: torch.as_tensor(batch[k]).to(device=device, non_blocking=non_blocking) for k in self.keys}
        target = batch.get(self.target_key)
        if target is not None:
            target = torch.as_tensor(target).to(device=device, non_blocking=non_blocking)
        return inputs, target


class BranchLoss:
    """``loss_function`` for a multi-sequence classifier: each branch's loss, summed.

    Args:
        network: the :class:`~mednet.networks.MultiSequenceClassifier` (its ``loss`` is used).
        imbalance: ``"none"``, ``"weights"`` (class-weighted cross-entropy) or ``"focal"``
            (see :func:`mednet.grading.make_criterion`); ``"sampler"`` is handled by the
            data loader and leaves the loss plain.
        class_counts: training cases per class, for ``"weights"``.
        gamma: focal loss exponent.

    The last call's per-branch losses are kept in ``last`` (sequence -> float).
    """

    def __init__(self, network, imbalance: str = "none", class_counts: Sequence[int] | None = None, gamma: float = 2.0):
        self.network = getattr(network, "module", network)  # DistributedDataParallel holds it as .module
        self.criterion = make_criterion(imbalance, class_counts, gamma)
        self.last: dict[str, float] = {}

    def __call__(self, outputs: Mapping, target: torch.Tensor) -> torch.Tensor:
        """The summed loss of the branches."""
        criterion = self.criterion
        if criterion is not None and hasattr(criterion, "to"):
            criterion = criterion.to(target.device)
        total, losses = self.network.loss(outputs, target, criterion)
        self.last = {name: float(value.detach()) for name, value in losses.items()}
        return total


def fused_probabilities(outputs: Mapping) -> torch.Tensor:
    """``(B, C)`` mean of the branches' probabilities (the fusion's ``mean`` rule), for the validation ROC AUC.

    The network returns each branch's probabilities only; whatever a bundle's case fusion
    (a vote's fractions are coarse: 3 branches give 4 levels), training's fused validation
    curve ranks slices by the mean probability.
    """
    return fuse(outputs["probabilities"], FusionMethod.MEAN)[0]


class _Pick:
    """Output transform: one branch's (or the fused) probabilities and the one-hot target."""

    def __init__(self, branch: str | None, n_classes: int):
        self.branch, self.n_classes = branch, n_classes

    def __call__(self, output) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if not isinstance(output, Mapping):
            raise TypeError("branch metrics need the batched engine output: set the engine's decollate to false")
        outputs, target = output[CommonKeys.PRED], output[CommonKeys.LABEL]
        probs = fused_probabilities(outputs) if self.branch is None else outputs["probabilities"][self.branch]
        if probs.shape[1] == 1:
            y = target.reshape(-1, 1).float()
        else:
            y = torch.nn.functional.one_hot(target.reshape(-1).long(), self.n_classes).float()
        return list(probs.detach()), list(y)


def branch_metrics(branches: Sequence[str], n_classes: int) -> dict[str, ROCAUC]:
    """Slice-level ROC AUC for each branch and for the fused mean probability.

    Names: ``val_slice_auc_<branch>`` and ``val_slice_auc_fused`` (slice level: a secondary
    figure for choosing the checkpoint; the bundles' ``evaluate.json`` reports patient level).

    Args:
        branches: the sequence names.
        n_classes: 1 for a single sigmoid logit, else the softmax width.
    """
    metrics = {f"val_slice_auc_{name}": ROCAUC(output_transform=_Pick(name, n_classes)) for name in branches}
    metrics["val_slice_auc_fused"] = ROCAUC(output_transform=_Pick(None, n_classes))
    return metrics


class BranchwiseBest:
    """Checkpoint: every branch with the weights of the epoch where its own validation metric was best.

    The branches of a :class:`~mednet.networks.MultiSequenceClassifier` are independent
    models trained side by side; they do not peak at the same epoch (a weak sequence may
    still improve long after a strong one has levelled off). Choosing one epoch by the
    fused metric keeps the weak branch's early weights; this handler keeps, for each
    branch, the state at its best ``<metric_prefix><branch>`` (higher is better), and after
    every validation where any branch improved writes the combined state dict to
    ``save_dir/filename`` (atomically, rank 0 only) and a record of which epoch each branch
    comes from to ``save_dir/<stem>_branches.json``.

    The file holds the plain ``state_dict`` (as MONAI's ``CheckpointSaver`` writes a single
    object), so ``CheckpointLoader(load_dict={"model": network})`` reads it.

    Args:
        network: the classifier (or its DDP wrapper).
        save_dir: where the checkpoint goes.
        filename: checkpoint file name.
        metric_prefix: the branch metric's name without the branch.
    """

    def __init__(
        self, network, save_dir: os.PathLike | str, filename: str = "model.pt", metric_prefix: str = "val_slice_auc_"
    ):
        self.network, self.save_dir, self.filename = network, Path(save_dir), filename
        self.metric_prefix = metric_prefix
        self.best: dict[str, dict] = {}
        self.states: dict[str, dict[str, torch.Tensor]] = {}

    def attach(self, engine: Engine) -> None:
        """Run after each validation epoch (its metrics are computed by then)."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Update the branches whose metric improved, and save when any did."""
        model = getattr(self.network, "module", self.network)
        metrics = engine.state.metrics
        epoch = int(engine.state.epoch)  # MONAI's Evaluator.run(global_epoch) sets it to the trainer's epoch
        improved = False
        for name, branch in model.branches.items():
            key = f"{self.metric_prefix}{name}"
            if key not in metrics:
                raise KeyError(f"BranchwiseBest: no metric {key!r}; the evaluator computes {sorted(metrics)}")
            value = float(metrics[key])
            if name not in self.best or value > self.best[name]["metric"]:
                self.best[name] = {"metric": value, "epoch": epoch}
                self.states[name] = {k: v.detach().cpu().clone() for k, v in branch.state_dict().items()}
                improved = True
        if improved and _rank() == 0:
            self.save(model)

    def state_dict(self) -> dict:
        """Each branch's best metric, its epoch and its weights (:class:`mednet.engines.Resume` keeps them)."""
        return {"best": {n: dict(b) for n, b in self.best.items()}, "states": dict(self.states)}

    def load_state_dict(self, state: Mapping) -> None:
        """Take back :meth:`state_dict`'s record."""
        self.best = {n: {"metric": float(b["metric"]), "epoch": int(b["epoch"])} for n, b in state["best"].items()}
        self.states = {n: dict(s) for n, s in state["states"].items()}

    def save(self, model) -> Path:
        """Write the combined state dict and the per-branch record."""
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        for name, branch_state in self.states.items():
            state.update({f"branches.{name}.{k}": v for k, v in branch_state.items()})
        self.save_dir.mkdir(parents=True, exist_ok=True)
        path = self.save_dir / self.filename
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        record = path.with_name(f"{path.stem}_branches.json")
        write_json_atomic(record, {"metric_prefix": self.metric_prefix, "branches": self.best}, indent=2)
        return path


def _rank() -> int:
    return (
        torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0
    )


class GradingWriter:
    """Collect every slice's probabilities in an evaluator and write them per slice and per patient.

    Files in ``output_dir``:

    - ``grading_slices.csv``: one row per slice (secondary, slice level): case, patient,
      slice index, true class (when known), each branch's probability per class;
    - ``grading.csv`` / ``grading.json``: one row per case: each branch's probability per
      class aggregated over the case's slices (``aggregation``), the fused probabilities and
      class by ``fusion`` (the bundle's :class:`mednet.fusion.CaseFusion`; DL-MDT also takes
      the case's clinicians' ``readings``), both by :func:`mednet.grading.grade_case`, and the
      true class; ``grading.csv``'s ``sequences`` column names the sequences the case was
      graded by. ``grading.json`` also holds each case's fusion record (rule, weights, votes,
      missing sources).

    A case lacking a sequence (``LesionSlicesd``'s ``fill_missing`` put zeros in its place
    and ``<sequence>_present`` False in its slices) is graded by the sequences it has: what
    the network made of the zeros is dropped, and the absent sequence's cells are blank.

    Given the ``network`` and its ``weights``, and an ``ood.json`` fitted for those weights
    beside them (:func:`mednet.grading.ood.fitted_check`), the writer also keeps each slice's
    features before each branch's last layer and applies the feature-distance check as
    ``mednet predict`` does: a case unlike the training cases is called indeterminate, with
    its ratios in the fusion record; ``grading.json`` says whether the check applied.

    Args:
        output_dir: where the files go (created).
        classes: class names, in target order (``classes[1]`` is the positive class of a
            binary single-logit network).
        aggregation: ``mean``, ``median``, ``max``, ``vote`` or ``logit_mean``.
        case_key / patient_key / slice_key: batch keys naming each slice's case.
        overwrite: replace existing files (else an existing ``grading.csv`` is an error).
        fusion: the case-level fusion.
        readings: ``case_id -> {role: reading}`` (e.g. :func:`mednet.fusion.datalist_readings`).
        network: the evaluator's multi-sequence network (for the feature-distance check).
        weights: the checkpoint it was loaded from (its ``ood.json`` is looked for beside it).
    """

    def __init__(
        self,
        output_dir: os.PathLike | str,
        classes: Sequence[str],
        fusion: CaseFusion,
        aggregation: str = "mean",
        case_key: str = "case_id",
        patient_key: str = "patient_id",
        slice_key: str = "slice_index",
        overwrite: bool = False,
        readings: Mapping[str, Mapping[str, object]] | None = None,
        network: torch.nn.Module | None = None,
        weights: os.PathLike | str | None = None,
    ):
        self.output_dir = Path(output_dir)
        self.classes = [str(c) for c in classes]
        self.fusion, self.aggregation = fusion, aggregation
        self.readings = dict(readings or {})
        self.case_key, self.patient_key, self.slice_key = case_key, patient_key, slice_key
        self.overwrite = overwrite
        self.rows: list[dict] = []
        self.network = network
        self.ood, self.ood_check = None, "no feature-distance check (no network and weights given to the writer)"
        if network is not None and weights is not None and Path(weights).is_file():
            self.ood, self.ood_check = fitted_check(weights, warn=False)  # recorded in grading.json
        self._hooks = contextlib.ExitStack()
        self._features: dict[str, torch.Tensor] = {}

    def attach(self, engine: Engine) -> None:
        """Collect after each iteration; write when the run completes."""
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)
        engine.add_event_handler(Events.COMPLETED, lambda e: self._hooks.close())

    def _start(self, engine: Engine) -> None:
        self.rows.clear()
        self._hooks.close()  # a run that raised left its hooks
        self._features = {}
        if self.ood is not None:  # the branches' features, kept by hooks for the run
            self._features = self._hooks.enter_context(keeping_features(self.network, self.ood.branches))

    def collect(self, engine: Engine) -> None:
        """Add the current batch's slices."""
        batch, output = engine.state.batch, engine.state.output
        outputs = output[CommonKeys.PRED]
        target = output.get(CommonKeys.LABEL)
        branch_probs = {name: class_probabilities(p.detach().float().cpu().numpy())
                        for name, p in outputs["probabilities"].items()}  # fmt: skip
        n = next(iter(branch_probs.values())).shape[0]
        for i in range(n):
            here = [name for name in branch_probs if _present(batch, name, i)]  # a filled-in sequence is dropped
            row = {
                "case_id": str(_item(batch.get(self.case_key), i, f"case{len(self.rows)}")),
                "patient_id": str(_item(batch.get(self.patient_key), i, _item(batch.get(self.case_key), i, ""))),
                "slice_index": int(_item(batch.get(self.slice_key), i, -1)),
                "true_class": self.classes[int(target[i])] if target is not None else "",
                "probabilities": {name: branch_probs[name][i].tolist() for name in here},
                "features": {name: f[i].cpu().numpy() for name, f in self._features.items() if name in here},
            }
            self.rows.append(row)

    def patients(self) -> list[dict]:
        """One row per case: aggregated branch probabilities, fused probabilities and class (:func:`grade_case`)."""
        cases: dict[str, list[dict]] = {}
        for row in self.rows:
            cases.setdefault(row["case_id"], []).append(row)
        out = []
        for case_id, rows in cases.items():
            slices = {name: np.array([r["probabilities"][name] for r in rows]) for name in rows[0]["probabilities"]}
            ood = None
            if self.ood is not None and rows[0]["features"]:  # the case's mean features, as the predictor's
                ood = self.ood.ratios({name: np.mean([r["features"][name] for r in rows], axis=0)
                                       for name in rows[0]["features"]})  # fmt: skip
            graded = grade_case(slices, self.classes, self.aggregation, self.fusion, self.readings.get(case_id),
                                ood=ood)  # fmt: skip
            out.append({"case_id": case_id, "patient_id": rows[0]["patient_id"], "slices": len(rows),
                        "true_class": rows[0]["true_class"], "branches": graded.sequences, "fused": graded.fused,
                        "fused_class": graded.fused_class, "fusion": graded.fusion,
                        "aggregation": self.aggregation})  # fmt: skip
        return out

    def write(self, engine: Engine | None = None) -> dict[str, Path]:
        """Write the slice rows and the per-case predictions."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        target = self.output_dir / "grading.csv"
        if target.exists() and not self.overwrite:
            raise FileExistsError(f"{target} exists; set overwrite to replace it")
        patients = self.patients()
        branches = list(dict.fromkeys(b for r in self.rows for b in r["probabilities"]))  # a case may lack some
        with atomic_path(self.output_dir / "grading_slices.csv") as tmp, tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["case_id", "patient_id", "slice_index", "true_class"]
                            + [f"p_{b}_{c}" for b in branches for c in self.classes])  # fmt: skip
            for r in self.rows:
                writer.writerow([r["case_id"], r["patient_id"], r["slice_index"], r["true_class"]]
                                + [_cell(r["probabilities"].get(b), i) for b in branches
                                   for i in range(len(self.classes))])  # fmt: skip
        with atomic_path(target) as tmp, tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["case_id", "patient_id", "slices", "true_class", "fused_class", "sequences"]
                            + [f"p_{b}_{c}" for b in [*branches, "fused"] for c in self.classes])  # fmt: skip
            for p in patients:
                values = [_cell(p["branches"].get(b), c) for b in branches for c in self.classes]
                values += [_cell(p["fused"], c) for c in self.classes]
                writer.writerow([p["case_id"], p["patient_id"], p["slices"], p["true_class"], p["fused_class"],
                                 " ".join(p["branches"])] + values)  # fmt: skip
        write_json_atomic(self.output_dir / "grading.json", {"classes": self.classes, "aggregation": self.aggregation,
                                                             "ood_check": self.ood_check, "cases": patients},
                          indent=2)  # fmt: skip
        return {"slices": self.output_dir / "grading_slices.csv", "cases": target}


def _present(batch: Mapping, name: str, i: int) -> bool:
    """Whether slice ``i`` of the batch had sequence ``name`` (``<name>_present`` from ``LesionSlicesd``'s filling)."""
    return bool(_item(batch.get(f"{name}_present"), i, True))


def _cell(values, key) -> str:
    """A probability as the CSVs write it; blank where the case lacks the sequence."""
    return "" if values is None else f"{values[key]:.6f}"


def _item(values, i: int, default):
    if values is None:
        return default
    if isinstance(values, torch.Tensor):
        return values[i].item() if values.ndim else values.item()
    return values[i]
