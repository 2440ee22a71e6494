"""``python -m mednet`` runs the ``mednet`` command."""

import sys

from mednet.cli.main import main

sys.exit(main())
