"""``python -m target_profile_mock serve ...``: the standalone server's command line."""

import sys

from target_profile_mock.mockserver.cli import main

sys.exit(main())
