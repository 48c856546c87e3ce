import sys

from communitykit.cli import main

sys.exit(main())
