import sys

from hematovision.cli import main

sys.exit(main())
