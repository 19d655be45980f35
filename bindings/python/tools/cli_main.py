"""`bazel run //bindings/python:cli -- top PID | report FILE [--html OUT] | stats [PID]`."""
import os
import sys

# Relative paths given to `bazel run` are relative to where it was started.
if "BUILD_WORKING_DIRECTORY" in os.environ:
    os.chdir(os.environ["BUILD_WORKING_DIRECTORY"])

import nitroheap  # noqa: E402  (the package from the runfiles, via imports = ["."])
from nitroheap.cli import main  # noqa: E402

if getattr(nitroheap, "__file__", None) is None:
    sys.exit("nitroheap: the package was not found in the runfiles")

if __name__ == "__main__":
    sys.exit(main())
