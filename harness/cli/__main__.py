"""``python -m harness.cli``: the same as the ``espspec`` command."""

import sys

from . import main

sys.exit(main())
