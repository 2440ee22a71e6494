"""mednet.bundles: finding bundles and writing benchmark figures into their model cards."""

from __future__ import annotations

import pytest

from mednet.bundles import bundle_path, list_bundles, write_benchmark_section


def _bundle(root, name: str, card: str):
    (root / name / "configs").mkdir(parents=True)
    (root / name / "configs" / "metadata.json").write_text("{}")
    (root / name / "docs").mkdir()
    (root / name / "docs" / "README.md").write_text(card)


def test_write_benchmark_section_replaces_only_its_section(tmp_path):
    _bundle(tmp_path, "x_bundle", "# X\n<!-- benchmark:x -->\nold\n<!-- /benchmark:x -->\n## Limitations\nkeep\n")
    assert list_bundles(tmp_path) == ["x_bundle"]
    readme = write_benchmark_section("x_bundle", "x", "| a | b |", root=tmp_path)
    assert readme.read_text() == "# X\n<!-- benchmark:x -->\n| a | b |\n<!-- /benchmark:x -->\n## Limitations\nkeep\n"
    with pytest.raises(ValueError, match=r"no <!-- benchmark:y -->"):
        write_benchmark_section("x_bundle", "y", "text", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"bundles in .*: x_bundle"):
        bundle_path("y_bundle", tmp_path)
