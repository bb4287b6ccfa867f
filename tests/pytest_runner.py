"""Entry point of the Bazel test targets: runs one test file under pytest.

Bazel runs this with the working directory at the workspace root of the
runfiles tree, so the argument is the test file's workspace-relative path.
"""

import sys

import pytest

if __name__ == "__main__":
  sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
