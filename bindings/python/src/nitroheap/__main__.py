"""python3 -m nitroheap top PID | report FILE [--html OUT] | stats [PID]"""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
