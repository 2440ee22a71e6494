"""Body-compartment classifier of the neuroblastoma paper: adrenal gland, retroperitoneum or thorax.

A small LeNet-style CNN ("convolution + downsampling": 5x5 kernels stride 1, 3x3 max
pooling, sigmoid activations) is pretrained with cross-entropy on enhanced axial
slices through the primary tumour, then used as a feature extractor: its flattened
features, standardised, are fed to an RBF support-vector machine, which makes the
decision. A case is classified by a majority vote over the slices through its lesion.

Training follows the paper: mini-batch SGD, momentum 0.9, weight decay 0.004, initial
learning rate 0.01 multiplied by 0.1 every 100 iterations.

Typical use::

    slices, targets, case_ids = compartment_dataset("datalist.json", "training", "cases.json")
    classifier = CompartmentClassifier().fit(slices, targets)
    classifier.save("compartment.pt")  # also writes compartment.svm.pkl
    site = classifier.predict_case(slices_through_lesion(image, labels, 12))
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import CropForeground, HistogramNormalize
from torch import nn

from mednet.io.atomic import atomic_path

__all__ = [
    "COMPARTMENTS",
    "PRIMARY_TUMOUR_LABEL",
    "CompartmentCNN",
    "CompartmentClassifier",
    "compartment_dataset",
    "enhance_slice",
    "slices_through_lesion",
]

logger = logging.getLogger(__name__)

#: The body compartments a primary neuroblastoma is assigned to, in class-index order.
COMPARTMENTS = ("adrenal", "retroperitoneum", "thorax")

#: Label value of the primary tumour in the neuroblastoma label scheme.
PRIMARY_TUMOUR_LABEL = 12

_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


# --------------------------------------------------------------------------- preprocessing


def enhance_slice(image2d: np.ndarray, *, n_bins: int = 256) -> np.ndarray:
    """Image enhancement before the network: percentile clipping then histogram equalisation.

    The body is the non-zero pixels (MR intensities are non-negative; zero is
    background). Body intensities are clipped to their 1st-99th percentiles, then
    equalised by MONAI's ``HistogramNormalize`` over the body: mapped through their
    cumulative histogram (``n_bins`` bins over the clipped range, linearly interpolated
    between bin centres), rescaled so that the lowest bin maps to ``1 / n_bins`` and the
    highest to 1. The body thus fills ``[1 / n_bins, 1]`` roughly uniformly, the mapping
    is non-decreasing in the input intensity, and background pixels stay exactly 0.

    Args:
        image2d: ``(H, W)`` intensities.
        n_bins: histogram bins.

    Returns:
        ``(H, W)`` float32 in ``[0, 1]``; all zeros when the slice has no body pixel.

    Raises:
        ValueError: not a 2D array, or non-finite values.
    """
    image2d = np.asarray(image2d, dtype=np.float64)
    if image2d.ndim != 2:
        raise ValueError(f"image2d: expected a 2D array, found shape {image2d.shape}")
    if not np.all(np.isfinite(image2d)):
        raise ValueError("image2d: non-finite values")
    out = np.zeros(image2d.shape, dtype=np.float32)
    body = image2d != 0
    if not body.any():
        return out
    low, high = np.percentile(image2d[body], [1.0, 99.0])
    if high <= low:  # a constant body
        out[body] = 1.0
        return out
    # the lowest bin above 0, so that the darkest body pixels stay apart from the background
    equalise = HistogramNormalize(num_bins=n_bins, min=1.0 / n_bins, max=1.0, mask=body, dtype=np.float32)
    out[body] = np.asarray(equalise(np.clip(image2d, low, high)))[body]
    return out


def _square_crop(slice2d: np.ndarray, body: np.ndarray) -> np.ndarray:
    """The smallest square around the body's bounding box, centred on it, zero-padded outside the image."""
    if not body.any():
        return slice2d
    cropper = CropForeground()  # the box of the body mask's non-zero pixels
    start, end = cropper.compute_bounding_box(torch.as_tensor(body)[None])
    side = int(np.max(end - start))
    start = start - (side - (end - start)) // 2
    return np.asarray(cropper.crop_pad(torch.as_tensor(slice2d)[None], start, start + side))[0]


def _resize(square: np.ndarray, size: int) -> np.ndarray:
    # torch's antialias, not MONAI Resize's: MONAI's Gaussian pads with zeros, which darkens
    # the border of these raw (not z-scored) intensities when shrinking
    tensor = torch.as_tensor(np.ascontiguousarray(square, dtype=np.float32))[None, None]
    antialias = min(square.shape) > size  # only matters when shrinking
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
    return resized[0, 0].numpy()


def slices_through_lesion(
    image: np.ndarray,
    labels: np.ndarray,
    lesion_values: int | Sequence[int],
    n: int = 3,
    size: int = 64,
    *,
    body_threshold: float | None = None,
) -> np.ndarray:
    """The ``n`` axial slices of largest lesion area, cropped to the body, resized and enhanced.

    Args:
        image: ``(x, y, z)`` intensities; the last axis is superior-inferior (as after
            reorientation to RAS).
        labels: ``(x, y, z)`` label map on the same grid.
        lesion_values: the label value(s) of the lesion.
        n: how many slices at most.
        size: output side in pixels.
        body_threshold: the body (what each slice is cropped to) is the pixels above
            this intensity; ``None`` (default) takes the non-zero pixels.

    Returns:
        ``(k, size, size)`` float32 in ``[0, 1]``, ``k = min(n, slices containing the
        lesion)``, ordered by decreasing lesion area (ties: lower slice index first).
        Each slice is cropped to the smallest square around the body's bounding box
        (zero-padded where it leaves the image), resized bilinearly, then passed
        through :func:`enhance_slice`. ``(0, size, size)`` when there is no lesion voxel.

    Raises:
        ValueError: not 3D, different shapes, or ``n``/``size`` below 1.
    """
    image = np.asarray(image)
    labels = np.asarray(labels)
    if image.ndim != 3 or image.shape != labels.shape:
        raise ValueError(
            f"image and labels: expected two (x, y, z) arrays of one shape, found {image.shape}, {labels.shape}"
        )
    if n < 1 or size < 1:
        raise ValueError(f"n and size must be at least 1, found n={n}, size={size}")
    values = [int(lesion_values)] if np.isscalar(lesion_values) else [int(v) for v in lesion_values]
    area = np.isin(labels, values).sum(axis=(0, 1))
    present = np.flatnonzero(area)
    order = present[np.argsort(-area[present], kind="stable")][:n]
    out = np.zeros((len(order), size, size), dtype=np.float32)
    for i, z in enumerate(order):
        slice2d = np.asarray(image[:, :, z], dtype=np.float32)
        body = slice2d != 0 if body_threshold is None else slice2d > body_threshold
        out[i] = enhance_slice(_resize(_square_crop(slice2d, body), size))
    return out


# --------------------------------------------------------------------------- network


class CompartmentCNN(nn.Module):
    """LeNet-style "convolution + downsampling" network with sigmoid activations.

    Layers, counted as LeNet-5 counts its seven (C1 S2 C3 S4 C5 F6 OUTPUT, input not
    counted, each convolution or pooling one layer, the classifier one layer):

    1. C1: 5x5 convolution, stride 1, padding 2, ``1 -> channels[0]``, sigmoid
    2. S2: 3x3 max pooling, stride 2
    3. C3: 5x5 convolution, ``channels[0] -> channels[1]``, sigmoid
    4. S4: 3x3 max pooling, stride 2
    5. C5: 5x5 convolution, ``channels[1] -> channels[2]``, sigmoid
    6. S6: 3x3 max pooling, stride 2 -> flattened: the features the SVM uses
    7. the fully connected head (``fc -> sigmoid -> fc(n_classes)``), used only to
       pretrain layers 1-6 with cross-entropy; the SVM replaces it at inference.

    With 64x64 inputs the maps are 64 -> 31 -> 15 -> 7 pixels, so with the default
    channels the feature vector has ``32 * 7 * 7 = 1568`` entries.

    Weights are Xavier-uniform initialised (suited to sigmoids), biases zero.

    Args:
        n_classes: outputs of the head.
        size: input side in pixels (at least 15).
        channels: output channels of the three convolutions.
        hidden: width of the head's hidden layer.
    """

    def __init__(
        self,
        n_classes: int = len(COMPARTMENTS),
        size: int = 64,
        channels: Sequence[int] = (6, 16, 32),
        hidden: int = 84,
    ) -> None:
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"channels: expected three values, found {tuple(channels)}")
        side = size
        for _ in range(3):
            side = (side - 3) // 2 + 1
        if side < 1:
            raise ValueError(f"size: at least 15 pixels are needed, found {size}")
        self.size = size
        blocks: list[nn.Module] = []
        previous = 1
        for width in channels:
            blocks += [
                nn.Conv2d(previous, width, kernel_size=5, stride=1, padding=2),
                nn.Sigmoid(),
                nn.MaxPool2d(kernel_size=3, stride=2),
            ]
            previous = width
        self.extractor = nn.Sequential(*blocks)
        self.n_features = previous * side * side
        self.head = nn.Sequential(nn.Linear(self.n_features, hidden), nn.Sigmoid(), nn.Linear(hidden, n_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened output of the last pooling layer.

        Args:
            x: ``(B, 1, size, size)``.

        Returns:
            ``(B, n_features)``.
        """
        return torch.flatten(self.extractor(x), start_dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, for pretraining with cross-entropy.

        Args:
            x: ``(B, 1, size, size)``.

        Returns:
            ``(B, n_classes)`` logits.
        """
        return self.head(self.features(x))


# --------------------------------------------------------------------------- classifier


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (``None``: leave as is), restoring the setting after."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class CompartmentClassifier:
    """CNN feature extractor + RBF SVM deciding the body compartment of enhanced lesion slices.

    Args:
        size: slice side in pixels.
        channels: the CNN's convolution widths.
        hidden: the CNN head's hidden width.
        device: where the CNN runs.
        num_threads: torch intra-op threads while training and extracting features
            (restored after); ``None`` keeps the process setting. The network is so small
            that splitting its operations costs more than it gains: on a busy 2-core CPU
            one thread ran an SGD step about 20 times faster than two.

    Attributes:
        cnn: the :class:`CompartmentCNN`.
        svm: the fitted ``StandardScaler -> SVC`` pipeline, ``None`` before :meth:`fit`.
        history: training cross-entropy per iteration of the last :meth:`fit`.
    """

    #: The paper's optimiser settings.
    MOMENTUM = 0.9
    WEIGHT_DECAY = 0.004
    LEARNING_RATE = 0.01
    LR_STEP_ITERATIONS = 100
    LR_GAMMA = 0.1

    def __init__(
        self,
        size: int = 64,
        channels: Sequence[int] = (6, 16, 32),
        hidden: int = 84,
        device: str | torch.device = "cpu",
        num_threads: int | None = 1,
    ) -> None:
        self.size = int(size)
        self.num_threads = num_threads
        self.channels = tuple(int(c) for c in channels)
        self.hidden = int(hidden)
        self.device = torch.device(device)
        self.cnn = self._new_cnn(seed=0)
        self.svm = None
        self.history: list[float] = []

    def _new_cnn(self, seed: int) -> CompartmentCNN:
        """A CNN initialised from ``seed``, leaving the global torch random state untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return CompartmentCNN(len(COMPARTMENTS), self.size, self.channels, self.hidden).to(self.device)

    def _check_slices(self, slices: np.ndarray) -> np.ndarray:
        slices = np.asarray(slices, dtype=np.float32)
        if slices.ndim != 3 or slices.shape[1:] != (self.size, self.size):
            raise ValueError(f"slices: expected (N, {self.size}, {self.size}), found {slices.shape}")
        return slices

    def fit(
        self,
        slices: np.ndarray,
        targets: Sequence[str],
        *,
        iterations: int = 300,
        batch_size: int = 32,
        seed: int = 0,
    ) -> CompartmentClassifier:
        """Pretrain the CNN with cross-entropy, then fit the SVM on its standardised features.

        The CNN is (re)initialised from ``seed`` and trained for ``iterations``
        mini-batches (reshuffled each pass over the data) with SGD: momentum 0.9,
        weight decay 0.004, learning rate 0.01 multiplied by 0.1 every 100 iterations.
        The SVM is ``SVC(kernel="rbf", class_weight="balanced")`` behind a
        ``StandardScaler``. The global torch random state is left untouched.

        Args:
            slices: ``(N, size, size)`` enhanced slices (:func:`slices_through_lesion`).
            targets: ``N`` compartment names from :data:`COMPARTMENTS`.
            iterations: SGD steps.
            batch_size: slices per step (at most ``N``).
            seed: seed of the initialisation and the batch order.

        Returns:
            ``self``.

        Raises:
            ValueError: bad shapes, unknown compartment, fewer than two compartments.
        """
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        slices = self._check_slices(slices)
        targets = [str(t) for t in targets]
        if len(targets) != len(slices):
            raise ValueError(f"targets: expected {len(slices)} names, found {len(targets)}")
        unknown = sorted(set(targets) - set(COMPARTMENTS))
        if unknown:
            raise ValueError(f"targets: unknown compartment(s) {unknown}; expected {COMPARTMENTS}")
        if len(set(targets)) < 2:
            raise ValueError(f"targets: at least two compartments are needed, found {sorted(set(targets))}")
        if iterations < 1 or batch_size < 1:
            raise ValueError(f"iterations and batch_size must be at least 1, found {iterations}, {batch_size}")

        self.cnn = self._new_cnn(seed)
        rng = np.random.default_rng(seed)
        x_all = torch.from_numpy(slices[:, None])
        y_all = torch.tensor([COMPARTMENTS.index(t) for t in targets], dtype=torch.long)
        batch_size = min(batch_size, len(slices))
        optimiser = torch.optim.SGD(
            self.cnn.parameters(), lr=self.LEARNING_RATE, momentum=self.MOMENTUM, weight_decay=self.WEIGHT_DECAY
        )
        scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=self.LR_STEP_ITERATIONS, gamma=self.LR_GAMMA)
        self.cnn.train()
        self.history = []
        with _torch_threads(self.num_threads):
            order, position = rng.permutation(len(slices)), 0
            for _ in range(iterations):
                if position + batch_size > len(order):
                    order, position = rng.permutation(len(slices)), 0
                index = torch.from_numpy(order[position : position + batch_size])
                position += batch_size
                optimiser.zero_grad(set_to_none=True)
                loss = F.cross_entropy(self.cnn(x_all[index].to(self.device)), y_all[index].to(self.device))
                loss.backward()
                optimiser.step()
                scheduler.step()  # per iteration: x0.1 every LR_STEP_ITERATIONS iterations
                self.history.append(float(loss.detach()))

        self.svm = make_pipeline(StandardScaler(), SVC(kernel="rbf", class_weight="balanced"))
        self.svm.fit(self.features(slices), np.asarray(targets))
        return self

    @torch.no_grad()
    def features(self, slices: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The CNN's flattened features.

        Args:
            slices: ``(N, size, size)``.
            batch_size: slices per forward pass.

        Returns:
            ``(N, F)`` float32.
        """
        slices = self._check_slices(slices)
        self.cnn.eval()
        with _torch_threads(self.num_threads):
            chunks = [
                self.cnn.features(torch.from_numpy(slices[i : i + batch_size, None]).to(self.device)).cpu().numpy()
                for i in range(0, len(slices), batch_size)
            ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.cnn.n_features), dtype=np.float32)

    def predict(self, slices: np.ndarray) -> list[str]:
        """The compartment of each slice.

        Args:
            slices: ``(N, size, size)``.

        Returns:
            ``N`` names from :data:`COMPARTMENTS`.

        Raises:
            RuntimeError: not fitted.
        """
        if self.svm is None:
            raise RuntimeError("CompartmentClassifier: call fit() or load() first")
        slices = self._check_slices(slices)
        if len(slices) == 0:
            return []
        return [str(p) for p in self.svm.predict(self.features(slices))]

    def predict_case(self, slices: np.ndarray) -> str:
        """The compartment of one lesion: majority vote over its slices.

        Args:
            slices: ``(k, size, size)`` slices of one lesion, largest area first (as
                :func:`slices_through_lesion` returns them).

        Returns:
            The most voted compartment; a tie goes to the tied compartment voted
            first in slice order (the largest-area slice's, when it is tied).

        Raises:
            ValueError: no slice.
            RuntimeError: not fitted.
        """
        votes = self.predict(slices)
        if not votes:
            raise ValueError("predict_case: no slice (does the case have a lesion?)")
        counts = {name: votes.count(name) for name in votes}  # dict keeps first-vote order
        best = max(counts.values())
        return next(name for name, count in counts.items() if count == best)

    @staticmethod
    def svm_path(path: os.PathLike | str) -> Path:
        """Where :meth:`save` puts the SVM pipeline next to the CNN weights at ``path``."""
        return Path(path).with_suffix(".svm.pkl")

    def save(self, path: os.PathLike | str) -> None:
        """Write the CNN weights to ``path`` and the SVM to :meth:`svm_path`.

        The CNN file is a plain state dict (``torch.load(path, weights_only=True)``
        reads it). The pickle holds the scikit-learn pipeline and the network's
        configuration (:meth:`load` builds nothing else from it).

        Raises:
            RuntimeError: not fitted.
        """
        if self.svm is None:
            raise RuntimeError("CompartmentClassifier: nothing to save before fit()")
        path = Path(path)
        with atomic_path(path, parents=True) as tmp:
            torch.save({k: v.detach().cpu() for k, v in self.cnn.state_dict().items()}, tmp)
        config = {"size": self.size, "channels": self.channels, "hidden": self.hidden, "compartments": COMPARTMENTS}
        with atomic_path(self.svm_path(path)) as tmp, tmp.open("wb") as file:
            pickle.dump({"config": config, "pipeline": self.svm}, file, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path: os.PathLike | str, device: str | torch.device = "cpu") -> CompartmentClassifier:
        """Read a classifier written by :meth:`save`.

        Security: the SVM file (:meth:`svm_path`) is a pickle; it is read with an
        unpickler that builds only what :meth:`save` writes (scikit-learn's ``Pipeline``,
        ``StandardScaler`` and ``SVC``, numpy arrays and scalars), so a file carrying any
        other callable (the way a pickle runs code) is refused before anything in it runs.
        The CNN weights are read with ``weights_only=True``.

        Raises:
            FileNotFoundError: either file missing.
            ValueError: the files were written for other compartments.
            pickle.UnpicklingError: the SVM file holds something :meth:`save` never writes.
        """
        path = Path(path)
        with cls.svm_path(path).open("rb") as file:
            stored = _SvmUnpickler(file, cls.svm_path(path)).load()
        config = stored["config"]
        if tuple(config["compartments"]) != COMPARTMENTS:
            raise ValueError(f"{path}: written for compartments {config['compartments']}, expected {COMPARTMENTS}")
        classifier = cls(config["size"], config["channels"], config["hidden"], device=device)
        classifier.cnn.load_state_dict(torch.load(path, map_location=classifier.device, weights_only=True))
        classifier.svm = stored["pipeline"]
        return classifier


class _SvmUnpickler(pickle.Unpickler):
    """Builds only what :meth:`CompartmentClassifier.save` pickles; any other global is refused unbuilt."""

    ALLOWED = frozenset({("sklearn.pipeline", "Pipeline"), ("sklearn.preprocessing._data", "StandardScaler"),
                         ("sklearn.svm._classes", "SVC"), ("numpy", "dtype"), ("numpy", "ndarray"),
                         ("numpy._core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
                         ("numpy._core.numeric", "_frombuffer"), ("numpy.core.multiarray", "scalar"),
                         ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.numeric", "_frombuffer")})  # fmt: skip

    def __init__(self, file, name: os.PathLike | str):
        super().__init__(file)
        self.name = name

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{self.name}: refused: it would build {module}.{name}, which a compartment "
                                         "classifier's SVM file never holds (a pickle that runs code?)")  # fmt: skip
        return super().find_class(module, name)


# --------------------------------------------------------------------------- dataset


def _read_case(image_path: str, label_path: str) -> tuple[np.ndarray, np.ndarray]:
    """An image and its label map as ``(x, y, z)`` arrays on the image's grid, oriented RAS."""
    from monai.transforms import Orientation, ResampleToMatch

    from mednet.io import read_image

    image = read_image(image_path, kind="image")
    labels = read_image(label_path, kind="label")
    if labels.shape != image.shape or not torch.allclose(labels.affine, image.affine, atol=1e-3):
        labels = ResampleToMatch(mode="nearest")(labels, img_dst=image)
    orient = Orientation(axcodes="RAS", labels=_RAS_LABELS)
    return np.asarray(orient(image)[0]), np.rint(np.asarray(orient(labels)[0])).astype(np.int32)


def compartment_dataset(
    datalist_path: os.PathLike | str,
    partition: str,
    cases_json: os.PathLike | str,
    n: int = 3,
    *,
    size: int = 64,
    sequence: str = "t2w",
    lesion_value: int = PRIMARY_TUMOUR_LABEL,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Slices through each case's primary tumour, labelled with its true compartment.

    For each case of ``partition``, the ``sequence`` image and the label map are read
    (the label map resampled, nearest neighbour, onto the image's grid if it is on
    another), reoriented to RAS, and :func:`slices_through_lesion` takes up to ``n``
    slices through the ``lesion_value`` voxels. Cases without such a voxel are skipped
    and a warning names them.

    Args:
        datalist_path: a mednet datalist (e.g. from ``generate_cohort("neuroblastoma", ...)``).
        partition: ``training``, ``validation`` or ``testing``.
        cases_json: the cohort's ``cases.json``: a list of objects with ``case_id`` and
            ``site`` (one of :data:`COMPARTMENTS`).
        n: slices per case at most.
        size: slice side in pixels.
        sequence: the datalist key of the image to slice.
        lesion_value: the primary tumour's label value.

    Returns:
        ``(slices, targets, case_ids)``: ``(K, size, size)`` float32 in ``[0, 1]``, and
        per slice its case's site and its case id.

    Raises:
        DatalistError: unknown partition, or a case lacks ``sequence`` or ``label``.
        ValueError: a case has no site in ``cases_json``, or an unknown one.
    """
    from mednet.io import datalist_cases

    cases = datalist_cases(datalist_path, partition, keys=[sequence, "label"])
    records = json.loads(Path(cases_json).read_text(encoding="utf-8"))
    sites = {str(r["case_id"]): r.get("site") for r in records if isinstance(r, dict) and "case_id" in r}
    missing = [c["case_id"] for c in cases if sites.get(c["case_id"]) not in COMPARTMENTS]
    if missing:
        found = {c: sites.get(c) for c in missing[:5]}
        raise ValueError(f"{cases_json}: no valid site (one of {COMPARTMENTS}) for {len(missing)} case(s): {found}")

    slices: list[np.ndarray] = []
    targets: list[str] = []
    case_ids: list[str] = []
    skipped: list[str] = []
    for case in cases:
        image, labels = _read_case(case[sequence], case["label"])
        taken = slices_through_lesion(image, labels, lesion_value, n=n, size=size)
        if len(taken) == 0:
            skipped.append(case["case_id"])
            continue
        slices.append(taken)
        targets += [sites[case["case_id"]]] * len(taken)
        case_ids += [case["case_id"]] * len(taken)
    if skipped:
        logger.warning(
            "compartment_dataset: %s: skipped %d case(s) without a label-%d voxel: %s",
            partition,
            len(skipped),
            lesion_value,
            ", ".join(skipped),
        )
    stacked = np.concatenate(slices) if slices else np.zeros((0, size, size), dtype=np.float32)
    return stacked, targets, case_ids
