"""`python -m fedbench` runs the `fedbench` command."""

import sys

from fedbench.cli import main

sys.exit(main())
