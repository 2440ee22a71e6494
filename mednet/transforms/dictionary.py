"""Dictionary transforms for bundle pipelines; names end in ``d``."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import monai.transforms
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    LoadImaged,
    MapTransform,
    RandomizableTransform,
)
from monai.utils import ImageMetaKey

from mednet.io.cases import LoadedCase, load_case, present_sequences
from mednet.io.field_of_view import MIN_WEDGE_FRACTION
from mednet.io.nifti_reader import NiftiReader
from mednet.localisation.outputs import (
    LabelScheme,
    LocalisationResult,
    localise_from_labels,
    localise_from_probabilities,
    write_localisation,
)
from mednet.transforms.array import (
    FieldOfViewFill,
    RandFieldOfViewCut,
    RandSequenceDropout,
    ResampleToReference,
    _probability,
)

__all__ = [
    "FieldOfViewFilld",
    "LoadCased",
    "LoadSequencesd",
    "Localised",
    "RandFieldOfViewCutd",
    "RandSequenceDropoutd",
    "ResampleToReferenced",
    "Spacingd",
    "WriteLocalisationd",
]


class ResampleToReferenced(MapTransform):
    """Bring every key onto the grid of ``ref_key`` (see :class:`ResampleToReference`).

    Args:
        keys: the images to bring onto the reference grid (``ref_key`` itself is skipped).
        ref_key: the reference sequence, e.g. the first listed one.
        label_keys: keys resampled with nearest-neighbour interpolation.
        allow_missing_keys: skip absent keys instead of raising.

    Example:
        ``{"_target_": "mednet.transforms.ResampleToReferenced", "keys": ["t1c", "t2", "label"],
        "ref_key": "t1", "label_keys": ["label"]}``
    """

    def __init__(
        self,
        keys: KeysCollection,
        ref_key: str,
        label_keys: Sequence[str] = (),
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.label_keys = set(label_keys)
        self._image = ResampleToReference(label=False)
        self._label = ResampleToReference(label=True)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Resample each key of ``data`` onto ``data[ref_key]``'s grid."""
        d = dict(data)
        if self.ref_key not in d:
            raise KeyError(f"ResampleToReferenced: reference key {self.ref_key!r} not in the data (keys {list(d)})")
        for key in self.key_iterator(d):
            if key != self.ref_key:
                resample = self._label if key in self.label_keys else self._image
                d[key] = resample(d[key], d[self.ref_key])
        return d


class RandSequenceDropoutd(RandomizableTransform, MapTransform):
    """Zero a random proper subset of the channels (sequences) of each key (see :class:`RandSequenceDropout`).

    One draw per call: with probability ``prob`` the same channels are set to 0 in every
    key, which must then all have the same number of channels ``C``; ``(C, *spatial)``
    in, the same shape, type and metadata out. Patch samples (a list of dictionaries from
    a ``Rand...Cropd`` with ``num_samples``) each get their own draw, as ``Compose`` calls
    the transform once per sample.

    Args:
        keys: the channel-first images, e.g. ``"image"`` (the sequences stacked as channels).
        prob: probability of dropping channels from a sample, in [0, 1]; 0 disables it.
        allow_missing_keys: skip absent keys instead of raising.

    Raises:
        ValueError: ``prob`` outside [0, 1]; keys with different numbers of channels.

    Example:
        ``{"_target_": "mednet.transforms.RandSequenceDropoutd", "keys": "image", "prob": 0.3}``
        at the end of ``train#random_transforms``, after the normalisation, the crop and
        the intensity shifts.
    """

    backend = RandSequenceDropout.backend

    def __init__(self, keys: KeysCollection, prob: float = 0.3, allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, _probability(prob, "RandSequenceDropoutd"))
        self.dropout = RandSequenceDropout(prob=1.0)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandSequenceDropoutd:
        """Seed this transform and the array transform it holds (as MONAI's dictionary transforms do)."""
        super().set_random_state(seed, state)
        self.dropout.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Return ``data`` with the same channels of every key set to 0 (with probability ``prob``)."""
        d = dict(data)
        self.randomize(None)
        keys = list(self.key_iterator(d))
        if not self._do_transform or not keys:
            return d
        channels = {key: int(d[key].shape[0]) for key in keys}
        if len(set(channels.values())) > 1:
            raise ValueError(f"RandSequenceDropoutd: keys: expected the same number of channels, found {channels}")
        self.dropout.randomize(channels[keys[0]])
        for key in keys:
            d[key] = self.dropout(d[key], randomize=False)
        return d


class RandFieldOfViewCutd(RandomizableTransform, MapTransform):
    """Cut a training volume's field of view with a random oblique plane (see :class:`RandFieldOfViewCut`).

    With probability ``prob``, every voxel beyond the plane is set to 0 in each image key
    (all channels: a wedge the scan did not reach, as a reformatted scan's zero-filled
    corners) and to 0 (background) in each label key: nothing can be seen there, so nothing
    is to be found there. One draw per call for all keys, which must share their spatial
    shape; ``(C, *spatial)`` in, the same shape, type and metadata out.

    Args:
        keys: the channel-first images, e.g. ``"image"``.
        label_keys: the channel-first label maps cut with them, e.g. ``"label"``.
        prob: probability of cutting a sample, in [0, 1]; 0 draws nothing and changes nothing.
        fraction: the range of the fraction of voxels cut off.
        allow_missing_keys: skip absent keys instead of raising.

    Raises:
        ValueError: ``prob`` or ``fraction`` out of range; keys with different spatial shapes.

    Example:
        ``{"_target_": "mednet.transforms.RandFieldOfViewCutd", "keys": "image", "label_keys": "label",
        "prob": 0.2}`` between ``Spacingd`` and ``NormalizeIntensityd(nonzero=True)``, which
        leaves the cut voxels 0 as it leaves a reformatted scan's corners (the segmentation
        bundles' ``train#field_of_view_cut``, in the pipeline when ``fov_cut_prob`` > 0).
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_keys: KeysCollection = (),
        prob: float = 0.0,
        fraction: Sequence[float] = (0.05, 0.35),
        allow_missing_keys: bool = False,
    ):
        labels = [label_keys] if isinstance(label_keys, str) else list(label_keys)
        images = [keys] if isinstance(keys, str) else list(keys)
        MapTransform.__init__(self, images + labels, allow_missing_keys)  # both cut to 0 alike
        RandomizableTransform.__init__(self, _probability(prob, "RandFieldOfViewCutd"))
        self.cut = RandFieldOfViewCut(prob=1.0, fraction=fraction)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandFieldOfViewCutd:
        """Seed this transform and the array transform it holds (as MONAI's dictionary transforms do)."""
        super().set_random_state(seed, state)
        self.cut.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Return ``data`` with the voxels beyond a random plane set to 0 (with probability ``prob``)."""
        d = dict(data)
        if self.prob == 0.0:
            return d  # no draw: the run's random numbers are those of a run without this transform
        self.randomize(None)
        keys = list(self.key_iterator(d))
        if not self._do_transform or not keys:
            return d
        shapes = {key: tuple(int(s) for s in d[key].shape[1:]) for key in keys}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"RandFieldOfViewCutd: keys: expected the same spatial shape, found {shapes}")
        mask = self.cut(shapes[keys[0]])
        if mask is None:
            return d
        for key in keys:
            value = d[key]
            beyond = torch.as_tensor(mask, device=value.device) if isinstance(value, torch.Tensor) else mask
            value = value.clone() if isinstance(value, torch.Tensor) else np.array(value, copy=True)
            value[:, beyond] = 0
            d[key] = value
        return d


class FieldOfViewFilld(MapTransform):
    """Fill the zeros beyond a scan's field of view for the network and keep their mask (see :class:`FieldOfViewFill`).

    ``data[key]``, the ``(C, x, y, z)`` stacked sequences on the reference grid as
    :class:`LoadSequencesd` leaves them, gets its voxels beyond the field of view filled
    with the nearest acquired values; ``data[mask_key]`` is set to the ``(1, x, y, z)`` bool
    tensor of those voxels on that grid (all ``False`` for a scan without any), for
    :class:`Localised` to label nothing there and for the case record to count. The filled voxels are no longer
    0, so ``NormalizeIntensityd(nonzero=True)`` counts them in its statistics, as it would
    for a scan acquired with that field of view. Place it right after
    :class:`LoadSequencesd`, before any reorientation or resampling: the mask stays on the
    input's grid, where the label map comes back.

    Args:
        keys: the stacked image, usually ``"image"``.
        mask_key: where the mask goes (one key: a single image key is expected).
        min_fraction: zero regions smaller than this fraction of the volume are left alone.

    Example:
        ``{"_target_": "mednet.transforms.FieldOfViewFilld", "keys": "image", "mask_key": "outside_fov"}``
    """

    def __init__(self, keys: KeysCollection, mask_key: str = "outside_fov", min_fraction: float = MIN_WEDGE_FRACTION,
                 allow_missing_keys: bool = False):  # fmt: skip
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"FieldOfViewFilld: keys: expected one stacked image key, found {list(self.keys)}")
        self.mask_key = mask_key
        self.fill = FieldOfViewFill(min_fraction)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Fill ``data[key]`` beyond its field of view and record the voxels' mask under ``mask_key``."""
        d = dict(data)
        for key in self.key_iterator(d):
            mask = self.fill.find(d[key])
            d[key] = self.fill.fill(d[key], mask)
            shape = tuple(int(s) for s in d[key].shape[1:])
            d[self.mask_key] = torch.as_tensor(mask if mask is not None else np.zeros(shape, dtype=bool))[None]
        return d


class LoadCased(MapTransform):
    """Read a case's sequences (and label maps) with :mod:`mednet.io`, on the first present sequence's grid.

    Each key's value is a path, read and validated by :func:`mednet.io.read_image` (NIfTI,
    NRRD, MetaImage, DICOM; a refused file raises an
    :class:`~mednet.errors.InvalidImageError` naming it), or a ``(1, x, y, z)`` MetaTensor
    already read that way (the prediction engine passes the images it holds). Sequences
    on another grid are resampled onto the reference grid, the first of ``keys`` present
    (:func:`mednet.io.load_case`). After the call each present key holds its
    ``(1, x, y, z)`` MetaTensor, and ``data["sequences_used"]`` lists the present sequences.

    Args:
        keys: the sequence keys, reference first when present, e.g. ``["t1", "t1c", "t2", "flair"]``.
        label_keys: keys holding label maps (nearest-neighbour interpolation; integer values checked).
        allow_missing_keys: load the sequences present (at least one) instead of refusing a
            case that lacks some; absent label maps are always allowed.

    Raises:
        DatalistError: a sequence missing (or all of them, with ``allow_missing_keys``).
        InvalidImageError: a file refused by :mod:`mednet.io` (its message names the file).
    """

    def __init__(self, keys: KeysCollection, label_keys: Sequence[str] = (), allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.label_keys = list(label_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Read and resample one case; a missing sequence's key (absent, ``None`` or ``""``) is left out."""
        return self.load(data)[0]

    def load(self, data: Mapping[Hashable, object]) -> tuple[dict, LoadedCase]:
        """The data with the images in place, and the :class:`mednet.io.LoadedCase` they come from."""
        d = {k: v for k, v in data.items() if k not in self.keys or k in present_sequences(data, self.keys)}
        loaded = load_case(d, list(self.keys), label_keys=self.label_keys, allow_missing=self.allow_missing_keys)
        d.update(loaded.images)
        d.update(loaded.labels)
        d["sequences_used"] = list(loaded.images)
        return d, loaded


class LoadSequencesd(MapTransform):
    """Load a case's MRI sequences as one channel-first image, from separate files or one stacked file.

    Two inputs are understood:

    - at least one key of ``keys`` present (a mednet datalist case, one path per sequence,
      or images already read): the sequences are read by :class:`LoadCased` (mednet's
      validation, the first present sequence's grid) and stacked as channels in the order
      of ``keys``, a missing sequence as an all-zero channel (the localisation networks are
      trained with sequence dropout to work from any non-empty subset); the per-sequence
      keys are then removed and ``data["sequences_used"]`` lists the present ones;
    - none of them present but ``name`` is (MONAI Label's request ``{"image": path}``, or a
      datalist of stacked files): one multi-channel file (a 4D NIfTI, channels last, as
      ``mednet bundle studies`` writes) holding the sequences in the order of ``keys``.

    Either way ``data[name]`` is a ``(len(keys), x, y, z)`` MetaTensor on the reference
    sequence's grid whose metadata (affine, file name) is that sequence's.

    Args:
        keys: the sequence keys in channel order, e.g. ``["t1", "t1c", "t2", "flair"]``.
        name: the output key (and the stacked file's key), usually ``"image"``.
        reader: the stacked file's reader (default :class:`mednet.io.NiftiReader`).
        allow_missing_keys: accept a case lacking some sequences (zero channels).

    Raises:
        KeyError: neither input form.
        ValueError: a stacked file whose channel count is not ``len(keys)``.
        DatalistError / InvalidImageError: see :class:`LoadCased`.
    """

    def __init__(self, keys: KeysCollection, name: str = "image", reader=None, allow_missing_keys: bool = True):
        super().__init__(keys, allow_missing_keys)
        self.name = name
        self._separate = LoadCased(self.keys, allow_missing_keys=allow_missing_keys)
        self._stacked = Compose([LoadImaged(name, reader=reader or NiftiReader, image_only=True),
                                 EnsureChannelFirstd(name)])  # fmt: skip

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Load and stack the sequences of one case."""
        if any(key in data for key in self.keys):  # one path per sequence (all of them missing: refused by name)
            d, loaded = self._separate.load(data)
            for key in self.keys:
                d.pop(key, None)
            d[self.name] = loaded.stacked(self.keys)
            return d
        if self.name not in data:
            raise KeyError(
                f"LoadSequencesd: expected one path per sequence {list(self.keys)} or a stacked file under "
                f"{self.name!r}; the data has {sorted(map(str, data))}"
            )
        d = self._stacked(dict(data))
        image = d[self.name]
        if image.ndim != 4 or image.shape[0] != len(self.keys):
            raise ValueError(
                f"{image.meta.get(ImageMetaKey.FILENAME_OR_OBJ)}: expected a stacked image of {len(self.keys)} "
                f"sequences {list(self.keys)} (a 4D file, channels last), found shape {tuple(image.shape)} "
                "after moving channels first; write one with `mednet bundle studies`"
            )
        d["sequences_used"] = list(self.keys)
        return d


class Spacingd(monai.transforms.Spacingd):
    """MONAI's ``Spacingd`` that leaves the data's other ``<key>_*`` entries alone.

    After resampling a NIfTI image, MONAI 1.6's ``Spacingd`` calls ``.update`` on every
    entry whose name starts with ``"<key>_"``, assuming each is a metadata dict. A MONAI
    Label request carries ``image_path``, a string, and the transform then fails
    (``'str' object has no attribute 'update'``). This subclass sets the entries that are
    not dicts aside during the call and puts them back unchanged; everything else,
    including ``inverse`` for ``Invertd``, is MONAI's.

    Args: as ``monai.transforms.Spacingd``.
    """

    def __call__(self, data: Mapping[Hashable, object], lazy: bool | None = None) -> dict:
        """Resample; entries like ``image_path`` come back untouched."""
        d = dict(data)
        prefixes = tuple(f"{key}_" for key in self.keys)
        aside = {
            k: d.pop(k) for k in list(d) if isinstance(k, str) and k.startswith(prefixes) and not isinstance(d[k], dict)
        }
        out = dict(super().__call__(d, lazy=lazy))
        out.update(aside)
        return out


class Localised(MapTransform):
    """Class probabilities to the final label map and its lesion table.

    See :func:`mednet.localisation.localise_from_probabilities`.

    ``data[key]``: on the reference input's grid, as a MetaTensor, either the ``(1, x, y, z)``
    labels :class:`mednet.transforms.InvertLabelsd` decided (with
    ``data[f"{key}_lesion_probability"]``; its decision settings must be this transform's),
    or the ``(C, x, y, z)`` softmax probabilities inverted by MONAI's ``Invertd`` (decided
    here: :func:`mednet.localisation.decide_labels`). It is replaced by the ``(1, x, y, z)``
    int16 label map (organ clean-up, small lesions removed) with the same metadata, and
    ``data[f"{key}_lesions"]`` gets the lesion table (a list of rows). This is the label
    map that :class:`WriteLocalisationd` writes and that MONAI Label returns.

    Args:
        keys: the probability key, usually ``"pred"``.
        labels: the label table (see :class:`mednet.localisation.LabelScheme`, as are the next nine).
        lesion_classes: lesion value -> class name.
        organ_components: organ value -> connected components to keep.
        compartments: organ name -> compartment.
        thorax_organs: organs whose lowest point bounds the thorax.
        compartment_priority: compartments in the order they win when a lesion touches several.
        above_organs: organ name -> compartment of a lesion touching it from above.
        min_lesion_mm3: smaller lesions are removed.
        host_distance_mm: farthest organ that can host a lesion touching none.
        lesion_threshold: summed lesion probability that makes a voxel a lesion (None: arg-max).
        outside_key: the data key of a ``(1, x, y, z)`` mask on the same grid of voxels beyond
            the acquired field of view (:class:`FieldOfViewFilld`'s): they are background in
            the map, whatever the network saw there. Absent from the data: nothing is masked.
    """

    def __init__(
        self,
        keys: KeysCollection,
        labels: Sequence[Mapping],
        lesion_classes: Mapping | None = None,
        organ_components: Mapping | None = None,
        compartments: Mapping[str, str] | None = None,
        thorax_organs: Sequence[str] = (),
        compartment_priority: Sequence[str] = (),
        above_organs: Mapping[str, str] | None = None,
        min_lesion_mm3: float = 0.0,
        host_distance_mm: float = 10.0,
        lesion_threshold: float | None = None,
        outside_key: str | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.outside_key = outside_key
        self.scheme = LabelScheme(
            labels, lesion_classes or {}, organ_components or {}, compartments or {}, thorax_organs,
            compartment_priority, above_organs or {}, min_lesion_mm3, host_distance_mm, lesion_threshold,
        )  # fmt: skip

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Replace the probabilities by the label map; add the lesion table."""
        d = dict(data)
        for key in self.key_iterator(d):
            value = _on_grid(d[key], key, "Localised")
            affine = np.asarray(value.affine, dtype=float)
            lesion_probability = d.pop(f"{key}_lesion_probability", None)
            outside = self._outside(d, tuple(value.shape[1:]))
            if lesion_probability is None:  # probabilities (Invertd's)
                probabilities = value.detach().cpu().numpy()
                if outside is not None:  # certainly background there
                    probabilities = probabilities.copy()
                    probabilities[:, outside] = 0.0
                    probabilities[0, outside] = 1.0
                result = localise_from_probabilities(probabilities, affine, self.scheme)
            else:  # labels InvertLabelsd decided
                decision = value.meta.get("decision")
                expected = {"lesion_classes": sorted(self.scheme.lesion_classes),
                            "lesion_threshold": self.scheme.lesion_threshold}  # fmt: skip
                if decision != expected:
                    raise ValueError(
                        f"Localised: {key!r} was decided with {decision}, expected this transform's {expected} "
                        "(give InvertLabelsd the same lesion_classes and lesion_threshold)"
                    )
                labels = value.detach().cpu().numpy()[0]
                probability = lesion_probability.detach().cpu().numpy()[0] if expected["lesion_classes"] else None
                if outside is not None:  # nothing is found where nothing was acquired
                    labels = np.where(outside, 0, labels).astype(labels.dtype)
                    probability = None if probability is None else np.where(outside, 0.0, probability)
                result = localise_from_labels(labels, probability, affine, self.scheme)
            meta = {k: v for k, v in value.meta.items() if k != "decision"}
            d[key] = MetaTensor(torch.as_tensor(result.labels[None]), meta=meta)
            d[f"{key}_lesions"] = result.lesions
        return d

    def _outside(self, d: Mapping, shape: tuple[int, ...]) -> np.ndarray | None:
        """The ``(x, y, z)`` mask under ``outside_key`` (``None`` when absent or empty); its grid must be ``shape``."""
        if self.outside_key is None or d.get(self.outside_key) is None:
            return None
        mask = d[self.outside_key]
        mask = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        while mask.ndim > len(shape) and mask.shape[0] == 1:  # (1, x, y, z), or batched (1, 1, x, y, z)
            mask = mask[0]
        mask = mask.astype(bool)
        if mask.shape != shape:
            raise ValueError(f"Localised: {self.outside_key!r}: expected a mask on the label map's grid {shape}, "
                             f"found shape {tuple(mask.shape)}")  # fmt: skip
        return mask if mask.any() else None


class WriteLocalisationd(MapTransform):
    """Write each case's label map, label table and lesion table.

    See :func:`mednet.localisation.write_localisation`.

    ``data[key]`` must hold the ``(1, x, y, z)`` label map and ``data[f"{key}_lesions"]``
    its lesion table, as :class:`Localised` leaves them: a MetaTensor on the reference
    input's grid whose metadata names the reference file. The case's name is
    ``data["case_id"]`` when present, else the reference file's name without its suffix.
    Adds ``<key>_files`` (the paths written) to the data.

    Args:
        keys: the label map key, usually ``"pred"``.
        output_dir: files go to ``output_dir/<case>/``.
        labels: the label table (value, name, colour per label; background is added).
        overwrite: replace existing outputs.

    Example:
        ``{"_target_": "mednet.transforms.WriteLocalisationd", "keys": "pred", "output_dir": "@output_dir",
        "labels": "@label_table"}``
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: os.PathLike | str,
        labels: Sequence[Mapping],
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.scheme = LabelScheme(labels, {})
        self.overwrite = overwrite

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        """Write the files of one case."""
        d = dict(data)
        for key in self.key_iterator(d):
            labels = _on_grid(d[key], key, "WriteLocalisationd")
            if f"{key}_lesions" not in d:
                raise KeyError(f"WriteLocalisationd: no {key}_lesions in the data; put Localised before it")
            case_id = d.get("case_id") or _stem(str(labels.meta.get(ImageMetaKey.FILENAME_OR_OBJ, "case")))
            result = LocalisationResult(labels.detach().cpu().numpy()[0], d[f"{key}_lesions"])
            paths = write_localisation(
                result, labels, self.output_dir, str(case_id), self.scheme, overwrite=self.overwrite
            )
            d[f"{key}_files"] = {name: str(path) for name, path in paths.items()}
        return d


def _on_grid(value: object, key: Hashable, who: str) -> MetaTensor:
    if not isinstance(value, MetaTensor) or value.ndim != 4:
        raise TypeError(f"{who}: {key!r} must be a (C, x, y, z) MetaTensor on the input grid (InvertLabelsd)")
    return value


def _stem(path: str) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
