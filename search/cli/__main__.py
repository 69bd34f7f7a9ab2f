"""`python -m medslim.search.cli ...` runs the command line (as `medslim ...` does)."""

import sys

from medslim.search.cli.app import main

sys.exit(main())
