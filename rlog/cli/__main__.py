"""``python -m rlog.cli``: how worker processes are started (same interpreter, same environment)."""

import sys

from rlog.cli import main

sys.exit(main())
