import sys

from spinefx.cli import main

sys.exit(main())
