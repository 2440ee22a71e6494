"""MultiSequenceClassifier: independent branches, per-branch losses, any subset of the sequences."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mednet.networks import SVGG, MultiSequenceClassifier


class Fixed(nn.Module):
    """A branch that returns fixed logits, whatever its input (plus a parameter so it has one)."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.as_tensor(logits, dtype=torch.float32))
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.logits * self.scale


def _inputs(names, batch=3):
    return {name: torch.zeros(batch, 1, 4, 4) for name in names}


def test_independent_branches_and_outputs():
    torch.manual_seed(0)
    model = MultiSequenceClassifier({s: SVGG(2, 1, channels=(4, 8), hidden=8) for s in ("t1", "t2", "flair")})
    ids = [{id(p) for p in branch.parameters()} for branch in model.branches.values()]
    assert all(ids) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    batch = {s: torch.randn(2, 1, 16, 16) for s in ("t1", "t2", "flair")} | {"label": torch.tensor([0, 1])}
    out = model(batch)
    assert set(out["logits"]) == {"t1", "t2", "flair"}
    assert all(v.shape == (2, 1) for v in out["probabilities"].values())
    assert set(out) == {"logits", "probabilities"}  # no decision inside the network
    for s in ("t1", "t2", "flair"):
        assert torch.allclose(out["probabilities"][s], torch.sigmoid(out["logits"][s]))
    assert model.sequences == ("t1", "t2", "flair")


def test_shared_branch_rejected():
    shared = nn.Linear(4, 1)
    with pytest.raises(ValueError, match="share parameters"):
        MultiSequenceClassifier({"t1": shared, "t2": nn.Sequential(shared)})


def test_losses_per_branch_summed():
    torch.manual_seed(0)
    model = MultiSequenceClassifier({s: SVGG(2, 1, channels=(4,), hidden=0) for s in ("t1", "t2")})
    batch = {s: torch.randn(2, 1, 8, 8) for s in ("t1", "t2")}
    target = torch.tensor([0, 1])
    out = model(batch)
    total, losses = model.loss(out, target, nn.BCEWithLogitsLoss())
    assert set(losses) == {"t1", "t2"}
    for s in ("t1", "t2"):
        assert torch.allclose(
            losses[s], nn.functional.binary_cross_entropy_with_logits(out["logits"][s], target[:, None].float())
        )
    assert torch.allclose(total, losses["t1"] + losses["t2"])
    total.backward()  # every branch receives its own gradient
    assert all(p.grad is not None for p in model.parameters())
    default_total, _ = model.loss(out, target)
    assert torch.allclose(default_total, total)


def test_losses_multiclass_default_cross_entropy():
    model = MultiSequenceClassifier({"a": Fixed([[2.0, 0.0, 0.0]]), "b": Fixed([[0.0, 1.0, 0.0]])})
    out = model(_inputs("ab", 1))
    target = torch.tensor([1])
    total, losses = model.loss(out, target)
    assert torch.allclose(losses["a"], nn.functional.cross_entropy(torch.tensor([[2.0, 0.0, 0.0]]), target))
    assert torch.allclose(total, losses["a"] + losses["b"])
    total, _ = model.loss(out, {"a": torch.tensor([0]), "b": torch.tensor([1])})
    assert total.ndim == 0


def test_a_subset_of_branches_runs_the_sequences_given():
    model = MultiSequenceClassifier({"t1": Fixed([[2.0]]), "t2": Fixed([[-1.0]]), "flair": Fixed([[0.5]])})
    out = model(_inputs(("t2", "flair"), 1))
    assert set(out["logits"]) == set(out["probabilities"]) == {"t2", "flair"}
    assert torch.allclose(out["probabilities"]["t2"], torch.sigmoid(torch.tensor([[-1.0]])))


def test_invalid_arguments_and_inputs():
    with pytest.raises(ValueError, match="at least one"):
        MultiSequenceClassifier({})
    model = MultiSequenceClassifier({"a": Fixed([[1.0]]), "b": Fixed([[1.0, 2.0]])})
    with pytest.raises(KeyError, match=r"expected one or more of \['a', 'b'\]"):
        model(_inputs("c", 1))
    with pytest.raises(ValueError, match="one shape"):
        model(_inputs("ab", 1))
