"""MultiSequenceClassifier: independent branches, per-branch losses, vote and mean fusion."""

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
    assert out["fused"].shape == (2, 1) and out["fused_class"].shape == (2,)
    assert out["fused_class"].dtype == torch.int64
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


def test_majority_vote_three_binary_branches():
    # rows: p per branch (logit 0 means p = 0.5, which votes 1)
    t1 = [[2.0], [-2.0], [0.0], [-1.0]]
    t2 = [[1.0], [3.0], [-3.0], [-1.0]]
    flair = [[-1.0], [-0.5], [-0.1], [4.0]]
    model = MultiSequenceClassifier({"t1": Fixed(t1), "t2": Fixed(t2), "flair": Fixed(flair)})
    out = model(_inputs(("t1", "t2", "flair"), 4))
    assert out["fused_class"].tolist() == [1, 0, 0, 0]
    assert torch.allclose(out["fused"][:, 0], torch.tensor([2 / 3, 1 / 3, 1 / 3, 1 / 3]))


@pytest.mark.parametrize(("tie", "expected"), [("positive", [1, 1, 0]), ("negative", [0, 1, 0])])
def test_vote_tie_two_branches(tie, expected):
    # row 0: one vote each (tie); row 1: both positive; row 2: both negative
    model = MultiSequenceClassifier(
        {"t1": Fixed([[3.0], [1.0], [-1.0]]), "t2": Fixed([[-3.0], [2.0], [-2.0]])}, tie=tie
    )
    out = model(_inputs(("t1", "t2")))
    assert out["fused_class"].tolist() == expected
    assert out["fused"][:, 0].tolist() == [0.5, 1.0, 0.0]


def test_vote_tie_paper_a_four_sources():
    # DL-MDT: 2 of 4 votes resolves to acoustic neuroma (positive)
    logits = {"t1": [[1.0]], "t2": [[-1.0]], "radiology": [[2.0]], "radiotherapy": [[-2.0]]}
    model = MultiSequenceClassifier({k: Fixed(v) for k, v in logits.items()})
    assert model(_inputs(logits, 1))["fused_class"].tolist() == [1]


def test_vote_multiclass_softmax_branches():
    a = [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]]
    b = [[0.0, 0.0, 3.0], [0.0, 3.0, 0.0]]
    c = [[0.0, 3.0, 0.0], [3.0, 0.0, 0.0]]
    branches = {"a": Fixed(a), "b": Fixed(b), "c": Fixed(c)}
    out = MultiSequenceClassifier(branches)(_inputs("abc", 2))
    assert out["fused_class"].tolist() == [2, 1]  # row 0: three-way tie -> highest class
    assert torch.allclose(out["probabilities"]["a"].sum(1), torch.ones(2))
    assert torch.allclose(out["fused"][1], torch.tensor([1 / 3, 2 / 3, 0.0]))
    negative = MultiSequenceClassifier({k: Fixed(v) for k, v in (("a", a), ("b", b), ("c", c))}, tie="negative")
    assert negative(_inputs("abc", 2))["fused_class"].tolist() == [0, 1]


def test_two_class_softmax_tie():
    branches = {"a": Fixed([[1.0, 0.0]]), "b": Fixed([[0.0, 1.0]])}
    assert MultiSequenceClassifier(dict(branches))(_inputs("ab", 1))["fused_class"].tolist() == [1]
    assert MultiSequenceClassifier(dict(branches), tie="negative")(_inputs("ab", 1))["fused_class"].tolist() == [0]


def test_mean_fusion():
    t1, t2, flair = [[2.0], [0.0]], [[-1.0], [-3.0]], [[-1.5], [3.0]]
    model = MultiSequenceClassifier({"t1": Fixed(t1), "t2": Fixed(t2), "flair": Fixed(flair)}, fusion="mean")
    out = model(_inputs(("t1", "t2", "flair"), 2))
    expected = torch.sigmoid(torch.tensor([t1, t2, flair])).mean(0)
    assert torch.allclose(out["fused"], expected)
    assert out["fused_class"].tolist() == (expected[:, 0] >= 0.5).long().tolist()
    # a mean of exactly 0.5 follows the tie rule
    tied = {"a": Fixed([[1.0]]), "b": Fixed([[-1.0]])}
    assert MultiSequenceClassifier(dict(tied), fusion="mean")(_inputs("ab", 1))["fused_class"].tolist() == [1]
    negative = MultiSequenceClassifier(dict(tied), fusion="mean", tie="negative")
    assert negative(_inputs("ab", 1))["fused_class"].tolist() == [0]


def test_invalid_arguments_and_inputs():
    with pytest.raises(ValueError, match="fusion"):
        MultiSequenceClassifier({"a": Fixed([[1.0]])}, fusion="max")
    with pytest.raises(ValueError, match="tie"):
        MultiSequenceClassifier({"a": Fixed([[1.0]])}, tie="random")
    with pytest.raises(ValueError, match="at least one"):
        MultiSequenceClassifier({})
    model = MultiSequenceClassifier({"a": Fixed([[1.0]]), "b": Fixed([[1.0, 2.0]])})
    with pytest.raises(KeyError, match="'b'"):
        model(_inputs("a", 1))
    with pytest.raises(ValueError, match="one shape"):
        model(_inputs("ab", 1))
