import sys

from kwstream.cli import main

sys.exit(main())
