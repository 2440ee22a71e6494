"""Every kind of bad input in tests/io/corpus.py, through both readers a researcher meets.

``mednet.io.load_case`` is how ``mednet predict`` (and the bundles, through ``LoadCased``)
reads a case; ``mednet info`` is the first look at a folder. For each kind: either the
case loads (the valid-but-unusual kinds), or the error is the kind's
:class:`~mednet.errors.MednetError` subclass, naming the file (or the case) and saying
what was expected and what was found; and ``mednet info`` never crashes: it reports a
refused file and exits 1, and describes a good one with exit code 0.
"""

from __future__ import annotations

import re

import pytest

from mednet.cli.main import main
from mednet.errors import MednetError
from mednet.io import load_case
from tests.io.corpus import KINDS, Kind

# Words that betray an error escaping from a library instead of being explained.
LEAKS = (
    "Traceback",
    "applying transform",
    "monai.transforms",
    "Exception thrown in SimpleITK",
    ".cxx:",
    "unexpected error",
)


def _make(kind: Kind, tmp_path, monkeypatch):
    made = kind.make(tmp_path)
    for name, value in made.env.items():
        monkeypatch.setenv(name, value)
    assert (made.path is None) == kind.entry_only, "a file kind must give mednet info a path"
    return made


def test_the_corpus_is_large_and_named_once():
    names = [k.name for k in KINDS]
    assert len(names) >= 50 and len(set(names)) == len(names)
    assert sum(k.error is None for k in KINDS) >= 15 and sum(k.error is not None for k in KINDS) >= 40


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_load_case(kind: Kind, tmp_path, monkeypatch):
    made = _make(kind, tmp_path, monkeypatch)
    read = lambda: load_case(made.case, list(made.sequences), label_keys=made.label_keys, allow_missing=True)  # noqa: E731
    if kind.error is None:
        loaded = read()
        assert loaded.reference_key == "t1"
        if kind.check is not None:
            kind.check(loaded, made)
        return
    with pytest.raises(MednetError) as caught:
        read()
    message = str(caught.value)
    assert type(caught.value) is kind.error, f"{type(caught.value).__name__}: {message}"
    assert re.search(kind.message, message), message
    assert str(made.blame or made.path) in message, f"the message does not name {made.blame or made.path}: {message}"
    assert "expected" in message and "found" in message
    assert "\n" not in message and not any(leak in message for leak in LEAKS), message


FILE_KINDS = [k for k in KINDS if not k.entry_only]


@pytest.mark.parametrize("kind", FILE_KINDS, ids=[k.name for k in FILE_KINDS])
def test_info(kind: Kind, tmp_path, monkeypatch, capsys):
    made = _make(kind, tmp_path, monkeypatch)
    code = main(["info", *made.info_args, str(made.path)])
    out, err = capsys.readouterr()
    assert not any(leak in out + err for leak in LEAKS), out + err
    assert str(made.path) in out
    if kind.error is None or kind.info_ok:
        assert code == 0, out
        assert "ERROR" not in out and "PROBLEM" not in out, out
    else:
        assert code == 1, out
        assert "ERROR" in out or "PROBLEM" in out, out
    if kind.info_message or (kind.error is not None and not kind.info_ok):
        assert re.search(kind.info_message or kind.message, out), out
