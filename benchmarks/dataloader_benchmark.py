"""The benchmark now lives in the helper package; this script runs it.

    python benchmarks/dataloader_benchmark.py [--json PATH] [--dry-run] ...

is the same as ``python -m mnist_helpers.bench ...`` (see that module).
"""

import sys

from mnist_helpers.bench import main

if __name__ == "__main__":
    sys.exit(main())
