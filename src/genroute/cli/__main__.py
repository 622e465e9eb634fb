"""`python -m genroute.cli`: the `genroute` command."""

import sys

from genroute.cli import main

sys.exit(main())
