"""``python -m fkb_cli``: the ``fkb`` command."""
import sys

from fkb_cli import main

sys.exit(main())
