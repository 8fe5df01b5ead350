"""`python -m zramd`: the same as the `zramd` command."""

import sys

from zramd.cli import main

sys.exit(main())
