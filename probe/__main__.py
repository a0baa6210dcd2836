"""`python -m probe` runs the surblocage-probe command."""

import sys

from probe.cli import main

sys.exit(main())
