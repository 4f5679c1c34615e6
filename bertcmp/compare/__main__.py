import sys

from bertcmp.compare.cli import main

sys.exit(main())
