"""Every kind of bad or unusual input in tests/io/corpus.py through ``mednet predict``, as one cohort.

tests/io/test_bad_inputs.py checks each kind against ``mednet.io.load_case`` and ``mednet
info``; this runs them all through the product path in one run of the CPA pipeline
(``t1`` of the corpus is CPA's reference ``t1c``, ``t2`` its ``t2``): the cohort goes on
past every bad case, the summary has a row for each with mednet's own message naming
the file, nothing of a refused case is left behind, and the kinds that must work do.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from mednet.cli.main import main
from tests.bundles.test_predict import trained_bundles  # noqa: F401  (the fixture)
from tests.io.corpus import KINDS, Kind, Made
from tests.io.test_bad_inputs import LEAKS

pytestmark = [pytest.mark.bundle, pytest.mark.slow]

#: corpus key -> CPA's key.
KEYS = {"t1": "t1c", "t2": "t2", "label": "label"}


def _entry(kind: Kind, made: Made) -> dict | None:
    """The kind's case as a datalist entry for CPA.

    None for the two kinds a datalist cannot hold as a case (an entry that is not a mapping,
    which has no case id to report it under: the datalist is refused, tests/io; an image in
    memory).
    """
    if not isinstance(made.case, dict):
        return None
    entry = {"case_id": kind.name, "patient_id": kind.name}
    for key, value in made.case.items():
        if key == "case_id":
            continue
        entry[KEYS.get(key, key)] = str(value) if isinstance(value, Path) else value
    try:
        json.dumps(entry)
    except TypeError:  # an image in memory: not a datalist's case
        return None
    return entry


def _probe(kind: Kind, folder: Path) -> Made:
    folder.mkdir(parents=True)
    return kind.make(folder)


def _cohort(kinds: list[Kind], root: Path) -> tuple[Path, dict[str, tuple[Kind, Made]]]:
    cases, made = [], {}
    for kind in kinds:
        (root / kind.name).mkdir(parents=True)
        one = kind.make(root / kind.name)
        entry = _entry(kind, one)
        if entry is not None:
            cases.append(entry)
            made[kind.name] = (kind, one)
    datalist = root / "datalist.json"
    datalist.write_text(json.dumps({"testing": cases}))
    return datalist, made


@pytest.mark.parametrize("env", [False, True], ids=["plain", "memory-budget"])
def test_every_kind_through_predict_in_one_cohort(env, trained_bundles, tmp_path, monkeypatch, capsys):  # noqa: F811
    kinds = [k for k in KINDS if bool(_probe(k, tmp_path / "probe" / k.name).env) == env]
    datalist, made = _cohort(kinds, tmp_path / "in")
    for _, one in made.values():
        for name, value in one.env.items():
            monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    code = main(["predict", "--disease", "cpa", "--input", str(datalist), "--out", str(out),
                 "--bundles", str(trained_bundles), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert not any(leak in err for leak in LEAKS), err
    with (out / "summary.csv").open(newline="") as stream:
        rows = {r["case_id"]: r for r in csv.DictReader(stream)}
    assert set(rows) == set(made), "every case has its row"
    bad = [name for name, (kind, _) in made.items() if kind.error is not None]
    assert code == (1 if bad else 0)
    problems = [f"{name}: {problem}" for name, (kind, one) in made.items()
                for problem in _problems(kind, one, rows[name], out)]  # fmt: skip
    assert not problems, "\n".join(problems)
    shutil.rmtree(tmp_path / "probe", ignore_errors=True)


def _for_cpa(text: str, case_id: str) -> str:
    """A corpus message as it reads for the case in this cohort: its case id, the corpus's t1 as CPA's t1c."""
    return text.replace("case c1", f"case {case_id}").replace("'t1'", "'t1c'").replace("t1, t2", "t1c, t2")


def _problems(kind: Kind, made: Made, row: dict, out: Path) -> list[str]:
    """What is wrong with how ``mednet predict`` treated the kind's case (its summary row, its files)."""
    name = kind.name
    if kind.error is None:
        if row["status"] != "ok":
            return [f"refused: {row['error']}"]
        return [] if (out / name / f"{name}.json").is_file() else ["no record"]
    message, problems = row["error"], []
    if row["status"] != "failed":
        return ["accepted"]
    expected, blame = _for_cpa(kind.message, name), _for_cpa(str(made.blame or made.path), name)
    if not re.search(expected, message):
        problems.append(f"message {message!r} does not match {expected!r}")
    if blame not in message:
        problems.append(f"the message does not name {blame}: {message}")
    if any(leak in message for leak in LEAKS):
        problems.append(f"library text in {message!r}")
    if (out / name).exists() or (out / ".partial" / name).exists():
        problems.append("files left behind")
    return problems
