"""Body-compartment classifier (neuroblastoma paper): preprocessing, network, SVM, dataset."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest
import torch

from mednet.papers.compartment import (
    COMPARTMENTS,
    CompartmentClassifier,
    CompartmentCNN,
    compartment_dataset,
    enhance_slice,
    slices_through_lesion,
)


def test_enhance_slice_range_monotonic_background():
    image = np.zeros((20, 20), np.float32)
    image[2:18, 2:18] = np.arange(1, 257, dtype=np.float32).reshape(16, 16)
    image[5, 5] = 10_000.0  # an outlier, clipped at the 99th percentile
    out = enhance_slice(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)
    assert np.all(out[image == 0] == 0.0)
    assert np.all(out[image != 0] > 0.0)
    order = np.argsort(image.ravel(), kind="stable")
    assert np.all(np.diff(out.ravel()[order]) >= 0)  # non-decreasing in the input
    # equalised: the body's values spread roughly uniformly over (0, 1]
    assert np.median(out[image != 0]) == pytest.approx(0.5, abs=0.05)


def test_enhance_slice_known_equalisation():
    # body values 1, 2, 3, 4 (25 pixels each) in 3 bins over [1, 4]: counts 25, 25, 50, cumulative
    # 25, 50, 100 rescaled to [1/3, 1] (1/3, 5/9, 1) at the bin centres 1.5, 2.5, 3.5, interpolated
    image = np.zeros((12, 12))
    image[1:11, 1:11] = np.repeat([1.0, 2.0, 3.0, 4.0], 25).reshape(10, 10)
    out = enhance_slice(image, n_bins=3)
    for value, expected in ((1.0, 1 / 3), (2.0, 4 / 9), (3.0, 7 / 9), (4.0, 1.0)):
        assert out[image == value] == pytest.approx(expected), value
    assert np.all(out[image == 0] == 0.0)


def test_enhance_slice_degenerate_inputs():
    assert not enhance_slice(np.zeros((8, 8))).any()
    constant = np.zeros((8, 8))
    constant[2:6, 2:6] = 7.0
    out = enhance_slice(constant)
    assert np.all(out[constant != 0] == 1.0) and np.all(out[constant == 0] == 0.0)
    with pytest.raises(ValueError, match="2D"):
        enhance_slice(np.zeros((2, 8, 8)))


def test_cnn_shapes():
    torch.manual_seed(0)
    net = CompartmentCNN()
    x = torch.rand(2, 1, 64, 64)
    assert net(x).shape == (2, len(COMPARTMENTS))
    features = net.features(x)
    assert features.shape == (2, net.n_features) and net.n_features == 32 * 7 * 7
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    n_pool = sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert (n_conv, n_pool) == (3, 3)


def test_slices_through_lesion_orders_by_area():
    image = np.zeros((30, 20, 10), np.float32)
    image[5:25, 4:16, :] = np.linspace(1, 100, 20 * 12 * 10).reshape(20, 12, 10)  # the body, not square
    labels = np.zeros(image.shape, np.uint8)
    labels[10:12, 8:10, 2] = 12  # area 4
    labels[10:15, 8:12, 3] = 12  # area 20
    labels[10:13, 8:11, 4] = 12  # area 9
    labels[10:14, 8:12, 5] = 13  # another label: ignored unless asked for
    labels[10:11, 8:10, 6] = 12  # area 2
    out = slices_through_lesion(image, labels, 12, n=3, size=64)
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    for i, z in enumerate((3, 4, 2)):  # by decreasing area
        assert np.array_equal(out[i], slices_through_lesion(image[:, :, z : z + 1], labels[:, :, z : z + 1], 12)[0])
    # the body (20 x 12) is centred in a 20 x 20 square: zero columns left and right, none above or below
    assert not out[0, :, :8].any() and not out[0, :, -8:].any() and out[0, :, 32].all()
    # fewer lesion slices than n; several label values
    assert slices_through_lesion(image, labels, 12, n=10).shape == (4, 64, 64)
    assert slices_through_lesion(image, labels, [12, 13], n=10).shape == (5, 64, 64)
    empty = slices_through_lesion(image, labels, 7)
    assert empty.shape == (0, 64, 64) and empty.dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        slices_through_lesion(image, labels[..., :5], 12)


def toy_slices(n_per_class, rng):
    """Noisy body discs with a bright blob at the top, middle or bottom: one position per compartment."""
    rows, cols = np.mgrid[0:64, 0:64]
    body = (rows - 32) ** 2 + (cols - 32) ** 2 < 28**2
    slices, targets = [], []
    for k, name in enumerate(COMPARTMENTS):
        for _ in range(n_per_class):
            centre = (14 + 18 * k + rng.integers(-3, 4), 32 + rng.integers(-6, 7))
            blob = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < 6**2
            image = np.where(body, 0.4 + 0.1 * rng.standard_normal((64, 64)), 0.0)
            image[blob] += 0.5
            slices.append(np.clip(image, 0.0, 1.0))
            targets.append(name)
    order = rng.permutation(len(targets))
    return np.asarray(slices, np.float32)[order], [targets[i] for i in order]


def test_classifier_learns_toy_task_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    train, train_targets = toy_slices(30, rng)
    test, test_targets = toy_slices(15, rng)
    classifier = CompartmentClassifier().fit(train, train_targets, iterations=150, batch_size=32, seed=0)
    assert len(classifier.history) == 150 and all(np.isfinite(classifier.history))
    predicted = classifier.predict(test)
    accuracy = np.mean([p == t for p, t in zip(predicted, test_targets, strict=True)])
    assert accuracy >= 0.9
    # the paper's optimiser: lr 0.01 x 0.1 every 100 iterations
    assert classifier.LEARNING_RATE == 0.01 and classifier.MOMENTUM == 0.9 and classifier.WEIGHT_DECAY == 0.004

    path = tmp_path / "model" / "compartment.pt"
    classifier.save(path)
    assert CompartmentClassifier.svm_path(path) == tmp_path / "model" / "compartment.svm.pkl"
    state = torch.load(path, weights_only=True)
    assert set(state) == set(classifier.cnn.state_dict())
    loaded = CompartmentClassifier.load(path)
    assert loaded.predict(test) == predicted
    assert np.array_equal(loaded.features(test), classifier.features(test))

    # an SVM file carrying a callable save() never writes is refused before it runs
    import os
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    CompartmentClassifier.svm_path(path).write_bytes(pickle.dumps({"config": {}, "pipeline": Payload()}))
    with pytest.raises(pickle.UnpicklingError, match=r"compartment.svm.pkl: refused: it would build posix.system"):
        CompartmentClassifier.load(path)
    assert not (tmp_path / "ran").exists()

    # same seed, same model; the global torch random state is left alone
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    again = CompartmentClassifier().fit(train, train_targets, iterations=20, seed=5)
    assert torch.equal(torch.rand(1), before)
    assert torch.get_num_threads() == threads  # the training's single thread is undone
    twice = CompartmentClassifier().fit(train, train_targets, iterations=20, seed=5)
    assert again.history == twice.history
    assert np.array_equal(again.features(test), twice.features(test))


def test_classifier_errors_and_case_vote():
    classifier = CompartmentClassifier()
    with pytest.raises(RuntimeError, match="fit"):
        classifier.predict(np.zeros((1, 64, 64), np.float32))
    with pytest.raises(ValueError, match="unknown compartment"):
        classifier.fit(np.zeros((2, 64, 64)), ["adrenal", "liver"])
    with pytest.raises(ValueError, match="two compartments"):
        classifier.fit(np.zeros((2, 64, 64)), ["adrenal", "adrenal"])
    with pytest.raises(ValueError, match=r"\(N, 64, 64\)"):
        classifier.fit(np.zeros((2, 32, 32)), ["adrenal", "thorax"])

    votes = {}
    classifier.predict = lambda slices: votes["v"]  # the vote only, no model needed
    slices = np.zeros((3, 64, 64), np.float32)
    votes["v"] = ["thorax", "adrenal", "adrenal"]
    assert classifier.predict_case(slices) == "adrenal"
    votes["v"] = ["thorax", "adrenal"]  # a tie goes to the largest-area slice's vote
    assert classifier.predict_case(slices) == "thorax"
    votes["v"] = ["retroperitoneum", "adrenal", "thorax", "adrenal", "thorax"]  # tie between later votes
    assert classifier.predict_case(slices) == "adrenal"
    votes["v"] = []
    with pytest.raises(ValueError, match="no slice"):
        classifier.predict_case(slices[:0])


def test_compartment_dataset_on_synthetic_cohort(tmp_path, caplog):
    from mednet.synthetic import generate_cohort

    generate_cohort("neuroblastoma", 4, tmp_path, size="small", seed=1, workers=1)
    doc = json.loads((tmp_path / "datalist.json").read_text())
    doc["training"] = doc["training"] + doc["validation"] + doc["testing"]
    doc["validation"], doc["testing"] = [], []
    datalist = tmp_path / "all.json"
    datalist.write_text(json.dumps(doc))
    sites = {c["case_id"]: c["site"] for c in json.loads((tmp_path / "cases.json").read_text())}
    assert len(doc["training"]) == 4

    slices, targets, case_ids = compartment_dataset(datalist, "training", tmp_path / "cases.json", n=3)
    assert slices.ndim == 3 and slices.shape[1:] == (64, 64) and slices.dtype == np.float32
    assert len(slices) == len(targets) == len(case_ids) and 4 <= len(slices) <= 12
    assert set(case_ids) == set(sites)
    assert targets == [sites[c] for c in case_ids]
    assert slices.min() >= 0.0 and slices.max() <= 1.0 and slices.max() > 0.5

    # a case whose primary tumour is gone is skipped, with a warning naming it
    gone = doc["training"][0]
    label_path = tmp_path / gone["label"]
    label = nib.load(label_path)
    data = np.asarray(label.dataobj)
    nib.save(nib.Nifti1Image(np.where(data == 12, 11, data).astype(data.dtype), label.affine, label.header), label_path)
    with caplog.at_level(logging.WARNING, logger="mednet.papers.compartment"):
        slices2, _, case_ids2 = compartment_dataset(datalist, "training", tmp_path / "cases.json", n=3)
    assert gone["case_id"] not in case_ids2 and set(case_ids2) == set(sites) - {gone["case_id"]}
    assert len(slices2) == len(case_ids2)
    assert any(gone["case_id"] in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_the_pipeline_does_not_run_the_papers_reproductions():
    """mednet.papers holds what the benchmarks compare with; no stage imports it."""
    import subprocess
    import sys

    code = ("import sys, mednet.pipeline, mednet.localisation, mednet.grading, mednet.inference; "
            "print(sorted(m for m in sys.modules if m.startswith('mednet.papers')))")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
