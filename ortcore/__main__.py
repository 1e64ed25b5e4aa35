import sys

from ortcore.cli import main

sys.exit(main())
