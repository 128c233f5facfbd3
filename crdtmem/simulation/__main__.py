"""``python -m crdtmem.simulation``: the ``crdtmem simulate`` command on its own."""

import sys

from .cli import main

sys.exit(main())
