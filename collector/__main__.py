"""`python -m collector` runs the surblocage-collector command."""

import sys

from collector.cli import main

sys.exit(main())
