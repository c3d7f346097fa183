"""`python -m napari_biogan.cli`."""

import sys

from . import main

sys.exit(main())
