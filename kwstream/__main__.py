import sys

from kwstream.cli.main import main

sys.exit(main())
