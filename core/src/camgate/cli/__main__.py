"""``python -m camgate.cli``: the ``camgate`` command."""

import sys

from camgate.cli import main

sys.exit(main())
