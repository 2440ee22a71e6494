"""StackedClassifier: the one-tensor view of a multi-sequence classifier, eager and TorchScript."""

from __future__ import annotations

import pytest
import torch

from mednet.networks import CLASSIFIERS, StackedClassifier, build_multisequence


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("n_features", [0, 5])
def test_same_probabilities_as_the_classifier_and_scriptable(name, n_features):
    torch.manual_seed(0)
    classes = 3 if n_features else 1
    classifier = build_multisequence(["t2w", "t1c"], name, 2, 1, classes, n_features=n_features).eval()
    stacked = StackedClassifier(classifier, in_channels=1).eval()
    image = torch.rand(2, 2, 32, 32)
    features = torch.rand(2, 5) if n_features else None
    with torch.no_grad():
        reference = classifier({"t2w": image[:, :1], "t1c": image[:, 1:], "features": features})
        out = stacked(image, features)
        scripted = torch.jit.script(stacked)(image, features)
    expected = torch.cat([reference["probabilities"]["t2w"], reference["probabilities"]["t1c"]], dim=1)
    assert out.shape == (2, 2 * classes)
    assert torch.allclose(out, expected, atol=1e-6) and torch.allclose(scripted, expected, atol=1e-5)


def test_checkpoints_load_unchanged_and_errors():
    classifier = build_multisequence(["t1", "t2", "flair"], "svgg", 2, 1, 1, channels=[4, 8], hidden=8)
    stacked = StackedClassifier(
        build_multisequence(["t1", "t2", "flair"], "svgg", 2, 1, 1, channels=[4, 8], hidden=8), 1
    )
    stacked.load_state_dict(classifier.state_dict())  # strict: the same parameter names
    loaded, saved = stacked.state_dict(), classifier.state_dict()
    assert list(loaded) == list(saved) and all(torch.equal(loaded[k], saved[k]) for k in saved)
    with pytest.raises(ValueError, match=r"expected 3 channels \(3 sequences x 1\), found 2"):
        stacked(torch.rand(1, 2, 16, 16))
    with_features = StackedClassifier(build_multisequence(["a"], "lenet5", 2, 1, 3, n_features=5), 1)
    with pytest.raises(ValueError, match="features"):
        with_features(torch.rand(2, 1, 32, 32))
    assert with_features.eval()(torch.rand(1, 1, 32, 32), [[0.0, 1.0, 2.0, 3.0, 4.0]]).shape == (1, 3)  # a CLI list
    with pytest.raises(TypeError, match="MultiSequenceClassifier"):
        StackedClassifier(torch.nn.Linear(2, 2), 1)
