"""Named options (fusion rules, tie rules, aggregation methods, ...) with "did you mean" errors.

A config typo such as ``"fusion": "majorty"`` should stop the run with a message that
names the option, lists the valid values and suggests the closest one. :func:`choose`
does this for a tuple of names (MONAI's ``look_up_option`` on normalised spellings, with a
message that names the setting); :class:`Option` for an :class:`enum.Enum` of them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import Enum

__all__ = ["Option", "choose"]


def choose(value: object, options: Iterable[str], what: str, normalise: bool = True) -> str:
    """``value`` as one of ``options``, or a ValueError naming ``what`` and the closest option.

    Args:
        value: the given value (e.g. from a config file).
        options: the valid names.
        what: what the value is, for the message (e.g. ``"fusion"``).
        normalise: compare stripped, lower-case text with ``-`` and spaces read as ``_``.

    Returns:
        The matching option, as spelled in ``options``.

    Raises:
        ValueError: no option matches; the message lists them and the closest one.
    """
    options = [str(o) for o in options]
    key = str(value.value if isinstance(value, Enum) else value)
    if normalise:
        key = key.strip().lower().replace("-", "_").replace(" ", "_")
    from monai.utils import look_up_option  # here: the CLI's parser reads options without loading MONAI

    compared = {(o.lower() if normalise else o): o for o in options}
    found = look_up_option(key, compared, default=None)  # MONAI's lookup, on the compared spellings
    if found is not None:
        return found
    close = difflib.get_close_matches(key, list(compared), n=1, cutoff=0.5)
    hint = f"; did you mean {compared[close[0]]!r}?" if close else ""
    raise ValueError(f"{what}: expected one of {', '.join(options)}, found {value!r}{hint}")


class Option(str, Enum):
    """Base of mednet's option enums: members are strings, :meth:`parse` explains typos."""

    @classmethod
    def parse(cls, value: object, what: str | None = None):
        """The member named by ``value`` (a member, or its value in any case), else a ValueError."""
        if isinstance(value, cls):
            return value
        name = choose(value, [m.value for m in cls], what or cls.__name__)
        return cls(name)

    def __str__(self) -> str:
        return str(self.value)
