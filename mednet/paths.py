"""Where mednet keeps the user's files: ``MEDNET_HOME`` (default ``~/.mednet``).

mednet never writes into its installed package. What it makes for the user without being
told where (the MONAI Label environment, the MONAI Label apps it serves) goes under
:func:`mednet_home`; every command that writes such files also takes an option naming
another place.

The default is ``~/.mednet``, not a cache folder such as ``~/.cache/mednet``: a served
MONAI Label app keeps the weights its annotators retrained, which cache cleaners may delete.

    >>> import os
    >>> os.environ["MEDNET_HOME"] = "/data/mednet"
    >>> str(mednet_home())
    '/data/mednet'
    >>> del os.environ["MEDNET_HOME"]
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HOME_ENV", "mednet_home"]

#: The environment variable naming mednet's folder for the user's files.
HOME_ENV = "MEDNET_HOME"


def mednet_home() -> Path:
    """``$MEDNET_HOME`` when set (``~`` expanded), else ``~/.mednet``; not created here."""
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".mednet"
