"""`python -m cli` = the `xmodal` command, run from this checkout."""

import sys

from cli.main import main

sys.exit(main())
