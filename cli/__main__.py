"""``python -m cli`` runs the ``pipecert`` command line (the same as the ``pipecert`` script)."""

import sys

from cli import main

sys.exit(main())
