"""`python -m streams` = the `xmodal` command, run from this checkout."""

import sys

from streams.cli import main

sys.exit(main())
