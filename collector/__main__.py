"""`python -m collector` runs the surblocage-collector command."""

import sys

from collector.entry import main

sys.exit(main())
