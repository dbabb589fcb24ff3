"""``python -m experiments`` runs the ``pipecert`` command line."""

import sys

from experiments.cli import main

sys.exit(main())
