import sys

from facegan.cli import main

sys.exit(main())
