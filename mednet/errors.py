"""Exceptions raised at mednet's boundaries.

Every error that a user can cause names the thing at fault (a file, a case, an
argument), what was expected and what was found, so that the message alone says
what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "DatalistError",
    "FieldOfViewError",
    "ImageNotFoundError",
    "InvalidImageError",
    "MednetError",
    "OutputExistsError",
    "PatientLeakageError",
    "ProtectedInputError",
    "SettingError",
    "transform_errors_unwrapped",
    "unwrapped",
]


class MednetError(Exception):
    """Base class of every error mednet raises on purpose."""


class InvalidImageError(MednetError, ValueError):
    """An image file (or DICOM folder) that mednet cannot use.

    Args:
        path: the file or folder at fault.
        problem: a short phrase, e.g. ``"not a 3D volume"``.
        expected: what mednet needs, in words.
        found: what the file holds, in words.
    """

    def __init__(self, path: os.PathLike | str, problem: str, expected: str = "", found: str = ""):
        self.path = str(path)
        self.problem = problem
        self.expected = expected
        self.found = found
        detail = ""
        if expected or found:
            detail = f": expected {expected or '?'}, found {found or '?'}"
        super().__init__(f"{self.path}: {problem}{detail}")


class ImageNotFoundError(InvalidImageError, FileNotFoundError):
    """The image path does not exist."""


class FieldOfViewError(InvalidImageError):
    """A sequence does not cover the reference sequence's field of view."""


class OutputExistsError(MednetError, FileExistsError):
    """An output file exists and replacing it was not asked for."""


class ProtectedInputError(MednetError, PermissionError):
    """An output path points at an input file, which mednet never overwrites."""


class DatalistError(MednetError, ValueError):
    """A datalist, manifest or split request that cannot be honoured."""


class PatientLeakageError(DatalistError):
    """A patient appears in more than one partition of a split."""


class SettingError(MednetError, ValueError):
    """A setting (an environment variable such as ``MEDNET_MAX_IMAGE_GB``) with a value mednet cannot use."""


def unwrapped(error: BaseException) -> BaseException:
    """The :class:`MednetError` that MONAI's transforms wrapped ``error`` around, else ``error`` itself.

    A transform that raises inside a ``Compose`` reaches the caller as
    ``RuntimeError("applying transform <...>")``, the real error as its cause (once per level of
    nesting): the user needs the cause's message, which names the file and the problem.
    """
    seen, cause = set(), error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, MednetError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return error


@contextmanager
def transform_errors_unwrapped() -> Iterator[None]:
    """Raise the :class:`MednetError` inside a MONAI ``RuntimeError("applying transform ...")`` instead of it.

    Example:
        >>> with transform_errors_unwrapped():  # doctest: +SKIP
        ...     data = preprocessing(case)  # an InvalidImageError naming the file, not "applying transform"
    """
    try:
        yield
    except RuntimeError as error:
        cause = unwrapped(error)
        if cause is error:
            raise
        raise cause from None
