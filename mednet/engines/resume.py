"""Resume an interrupted training from its last completed epoch, with the same result as an uninterrupted run.

A training on two CPU cores takes hours; a session ends, a machine restarts, a job is
killed. :class:`Resume` writes, after every epoch (once its validation and best-model
checkpoint are done), what the rest of the run depends on, to one file (``resume.pt``,
atomically, rank 0):

- the trainer's epoch and iteration, the network's and the optimizer's state (with each
  parameter group's ``initial_lr``, from which the cosine annealing continues);
- the random number generators: torch's (CPU and CUDA), numpy's and Python's global ones,
  and those of the training dataset's random transforms (MONAI's ``DataLoader`` seeds them
  once when it has no workers; with workers they are reseeded each epoch from torch's);
- the validation's best metric so far and the best-model savers' records (MONAI's
  ``CheckpointSaver`` key metric, :class:`mednet.engines.BranchwiseBest`), so that a worse
  epoch after the restart does not overwrite ``model.pt``.

When the trainer is attached and the file exists, all of it is loaded (``weights_only``
loading: plain tensors and numbers only) and the run continues at the next epoch: on CPU,
with the same seed and threads, the weights after the last epoch are those of a run that
was never stopped (tested). A run that reaches its last epoch removes the file and writes
the training's wall time over all its parts (each counted to its last completed epoch)
to ``training_time.json`` beside it. In a
distributed run every rank loads rank 0's file, so the other ranks' random streams differ
from an unstopped run's (the run still resumes).

Example:
    ``{"_target_": "mednet.engines.Resume", "path": "$@ckpt_dir + '/resume.pt'",
    "network": "@network", "optimizer": "@optimizer", "dataset": "@train#dataset",
    "validator": "@validate#evaluator", "savers": "@validate#handlers", "enabled": "@resume"}``
    first in ``train#handlers`` (it saves after the handlers attached after it).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.transforms import Randomizable, Transform

from mednet.engines.grading import _rank
from mednet.io.atomic import atomic_path, write_json_atomic

__all__ = ["Resume", "random_states"]

logger = logging.getLogger(__name__)

_FORMAT = 1


def _parts(obj) -> Iterable:
    """The transforms ``obj`` holds: list entries, attributes (``Compose.transforms``, ``RandAffined.rand_affine``)."""
    if isinstance(obj, list | tuple):
        return obj
    return [v for v in vars(obj).values() if isinstance(v, Transform | Randomizable | list | tuple)]


def random_states(dataset) -> list[np.random.RandomState]:
    """The ``RandomState`` of each random transform of ``dataset``'s chain, nested ones included, each once.

    In a fixed order (depth first, attributes in definition order), so that two runs built
    from the same config list them alike.
    """
    states, seen, todo = [], set(), [getattr(dataset, "transform", None)]
    while todo:
        obj = todo.pop()
        if obj is None or id(obj) in seen or not isinstance(obj, Transform | Randomizable | list | tuple):
            continue
        seen.add(id(obj))
        state = getattr(obj, "R", None)
        if isinstance(state, np.random.RandomState) and id(state) not in seen:
            seen.add(id(state))
            states.append(state)
        todo.extend(reversed(list(_parts(obj))))
    return states


def _numpy_state(state: np.random.RandomState) -> dict:
    name, keys, position, has_gauss, gauss = state.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}  # fmt: skip


def _set_numpy_state(target: np.random.RandomState, saved: dict) -> None:
    target.set_state((saved["name"], saved["keys"].numpy().astype(np.uint32), saved["position"],
                      saved["has_gauss"], saved["gauss"]))  # fmt: skip


def _saver_state(saver) -> dict | None:
    """A best-model saver's record: MONAI's ``CheckpointSaver`` (key metric) or a handler with ``state_dict``."""
    checkpoint = getattr(saver, "_key_metric_checkpoint", None)  # MONAI keeps its ignite Checkpoint here
    if checkpoint is not None:
        return {"saved": [(float(p), str(f)) for p, f in checkpoint.state_dict()["_saved"]]}
    if callable(getattr(saver, "state_dict", None)) and callable(getattr(saver, "load_state_dict", None)):
        return saver.state_dict()
    return None


def _load_saver_state(saver, state: dict) -> None:
    if getattr(saver, "_key_metric_checkpoint", None) is not None:
        saver.load_state_dict({"_saved": [tuple(item) for item in state["saved"]]})
    else:
        saver.load_state_dict(state)


class Resume:
    """Save the run's state after each epoch; continue from it when the run is started again.

    Args:
        path: the state file (``resume.pt`` beside the checkpoints).
        network: the network (or its DDP wrapper).
        optimizer: the optimizer.
        dataset: the training dataset, whose random transforms' states are kept.
        validator: the evaluator, whose ``best_metric`` and ``best_metric_epoch`` are kept.
        savers: the validator's handlers; those that keep a best model (see above) have
            their records kept, the others are ignored.
        enabled: ``False`` makes the handler do nothing (a bundle's default: a new run
            starts from scratch unless asked to resume).
    """

    def __init__(self, path, network, optimizer, dataset=None, validator=None, savers: Sequence = (), enabled=True):
        self.path = Path(path)
        self.network, self.optimizer, self.dataset = network, optimizer, dataset
        self.validator = validator
        self.savers = [s for s in (savers or ()) if _saver_state(s) is not None]
        self.enabled = bool(enabled)
        self.resumed_at: list[int] = []  # the epochs after which earlier parts stopped
        self.seconds_before = 0.0  # training time of the earlier parts of the run
        self._part_start = time.monotonic()

    def attach(self, engine: Engine) -> None:
        """Load the state file now if there is one; save after every epoch, after the other handlers."""
        if not self.enabled:
            return
        if self.path.is_file():
            self.load(engine)
        engine.add_event_handler(Events.STARTED, self._register)
        engine.add_event_handler(Events.STARTED, self._start_clock)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _register(self, engine: Engine) -> None:
        # registered when the run starts, every handler attached by then: this one saves last
        if not engine.has_event_handler(self.save, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def _start_clock(self, engine: Engine) -> None:
        self._part_start = time.monotonic()

    def seconds(self) -> float:
        """Training time so far, over every part of the run."""
        return self.seconds_before + time.monotonic() - self._part_start

    def _completed(self, engine: Engine) -> None:
        if _rank() == 0 and engine.state.epoch >= (engine.state.max_epochs or 0):
            write_json_atomic(self.path.with_name("training_time.json"),
                              {"seconds": round(self.seconds(), 1), "epochs": int(engine.state.epoch),
                               "resumed_at_epochs": self.resumed_at})  # fmt: skip
            self.path.unlink(missing_ok=True)

    def state(self, engine: Engine) -> dict:
        """Everything the rest of the run depends on (plain tensors, numbers and strings)."""
        model = getattr(self.network, "module", self.network)
        validator = getattr(self.validator, "state", None)
        return {
            "format": _FORMAT,
            "epoch": int(engine.state.epoch),
            "iteration": int(engine.state.iteration),
            "max_epochs": int(engine.state.max_epochs or 0),
            "network": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_rng": _numpy_state(_global_numpy()),
            "python_rng": random.getstate(),
            "transform_rng": [_numpy_state(s) for s in random_states(self.dataset)],
            "best_metric": float(getattr(validator, "best_metric", -1.0)) if validator is not None else None,
            "best_metric_epoch": int(getattr(validator, "best_metric_epoch", -1)) if validator is not None else None,
            "savers": [_saver_state(s) for s in self.savers],
            "seconds": self.seconds(),
            "resumed_at_epochs": list(self.resumed_at),
        }

    def save(self, engine: Engine) -> None:
        """Write :meth:`state` atomically (rank 0)."""
        if _rank() != 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            torch.save(self.state(engine), tmp)

    def load(self, engine: Engine) -> None:
        """Restore the state file into the objects and the trainer (which then continues at the next epoch).

        Raises:
            ValueError: a file of another format, or one that does not fit this run (another
                number of random transforms or savers, a network of another shape).
        """
        saved = torch.load(self.path, map_location="cpu", weights_only=True)
        if saved.get("format") != _FORMAT:
            raise ValueError(f"{self.path}: not a mednet resume file of format {_FORMAT}; delete it to start afresh")
        states = random_states(self.dataset)
        if len(states) != len(saved["transform_rng"]) or len(self.savers) != len(saved["savers"]):
            raise ValueError(
                f"{self.path}: written by a run with {len(saved['transform_rng'])} random transforms and "
                f"{len(saved['savers'])} best-model savers, this run has {len(states)} and {len(self.savers)}: "
                "another configuration; delete it to start afresh"
            )
        if saved["max_epochs"] != int(engine.state.max_epochs or 0):
            logger.warning(f"{self.path}: written by a run of {saved['max_epochs']} epochs, continued to "
                           f"{engine.state.max_epochs}: the learning rates differ from either run's")  # fmt: skip
        getattr(self.network, "module", self.network).load_state_dict(saved["network"])
        self.optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        _set_numpy_state(_global_numpy(), saved["numpy_rng"])
        random.setstate(_python_state(saved["python_rng"]))
        for state, values in zip(states, saved["transform_rng"], strict=True):
            _set_numpy_state(state, values)
        if self.validator is not None and saved["best_metric"] is not None:
            self.validator.state.best_metric = saved["best_metric"]
            self.validator.state.best_metric_epoch = saved["best_metric_epoch"]
        for saver, state in zip(self.savers, saved["savers"], strict=True):
            _load_saver_state(saver, state)
        engine.state.epoch, engine.state.iteration = saved["epoch"], saved["iteration"]
        self.seconds_before = float(saved["seconds"])
        self.resumed_at = [*saved["resumed_at_epochs"], saved["epoch"]]
        logger.info(f"resuming from {self.path}: epoch {saved['epoch']} of {engine.state.max_epochs} done")


def _global_numpy() -> np.random.RandomState:
    return np.random.mtrand._rand  # the RandomState behind np.random.seed / np.random.*


def _python_state(saved) -> tuple:
    """``random.getstate()``'s tuple back from what ``torch.save`` kept (tuples may come back as lists)."""
    version, internal, gauss = saved
    return int(version), tuple(int(v) for v in internal), gauss

