"""Write an output file atomically, with the mode a plain ``open()`` would give it.

Every file mednet writes goes through :func:`atomic_path`: the content is written to a
unique temporary file in the target's folder (so the rename stays on one filesystem),
then renamed over the target in one step. A reader never sees half a file, an
interrupted or failed write leaves the target as it was and no temporary file behind,
and two processes writing the same output each rename a whole file of their own: the
last one wins.

The temporary file is created the way ``open(path, "w")`` creates a file (mode
``0o666`` filtered by the process umask and the folder's default ACL), so outputs are
as readable by the group as any file the user makes: the user's umask decides, mednet
never forces permissions. Asking the kernel at creation avoids reading the umask with
``os.umask``, which briefly changes it for every thread of the process.

Example:
    >>> with atomic_path(out / "lesions.csv") as tmp, tmp.open("w", newline="") as stream:
    ...     csv.writer(stream).writerows(rows)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_json_atomic", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str, *, suffix: str = "", parents: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one rename.

    The temporary file already exists (empty) when yielded; write it by name (any
    writer that opens it for writing, or replaces it, will do). Its name is
    ``.<name>.<random>.tmp<suffix>`` in ``path``'s folder. When the ``with`` block
    ends normally the file gets the mode it was created with (what ``open()`` gives
    under the umask) and is renamed over ``path``; when it raises, the temporary file
    is removed, ``path`` is left untouched and the exception propagates.

    Args:
        path: the file to write.
        suffix: ending of the temporary name, for writers that choose the format by it
            (``".nii.gz"`` for nibabel, ``".png"`` for matplotlib).
        parents: create ``path``'s missing parent folders (mode from the umask);
            otherwise the folder must exist.

    Yields:
        The temporary path to write.

    Raises:
        FileNotFoundError: ``path``'s folder does not exist and ``parents`` is False.
    """
    target = Path(path)
    if parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    elif not target.parent.is_dir():
        raise FileNotFoundError(f"{target}: folder {target.parent} does not exist; create it first")
    tmp = _new_temporary(target, suffix)
    try:
        mode = tmp.stat().st_mode & 0o7777
        yield tmp
        os.chmod(tmp, mode)  # in case the writer replaced the file with one of another mode
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_temporary(target: Path, suffix: str) -> Path:
    """Create an empty file beside ``target`` under a name no other writer holds, as ``open()`` would."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def write_text_atomic(path: os.PathLike | str, text: str, *, encoding: str = "utf-8", parents: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`).

    Args:
        path: the file to write.
        text: its whole content.
        encoding: text encoding.
        parents: create ``path``'s missing parent folders.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_path(path, parents=parents) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def write_json_atomic(path: os.PathLike | str, obj: object, *, parents: bool = False, **json_kwargs) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically, with a final newline (UTF-8).

    Args:
        path: the file to write.
        obj: what to serialise.
        parents: create ``path``'s missing parent folders.
        **json_kwargs: passed to :func:`json.dumps` (``indent``, ``default``, ...).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return write_text_atomic(path, json.dumps(obj, **json_kwargs) + "\n", parents=parents)
