"""`python -m rig_ros.cli`: the `rig` command."""

import sys

from rig_ros.cli import main

sys.exit(main())
