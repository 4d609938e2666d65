"""``python -m traction.extract ...`` == ``traction extract ...``."""
import sys

from traction.extract.cli import main

if __name__ == "__main__":
    sys.exit(main())
