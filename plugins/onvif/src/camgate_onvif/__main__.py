"""``python -m camgate_onvif probe URL`` (see :mod:`camgate_onvif.cli`)."""

import sys

from camgate_onvif.cli import main

sys.exit(main())
