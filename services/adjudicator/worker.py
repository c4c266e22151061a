"""`python -m services.adjudicator.worker`, the worker's old name, kept for deployments that start it so:
the worker is services/cli/worker.py (`python -m services.cli.worker`)."""
from __future__ import annotations

import sys

from services.cli.worker import main

if __name__ == "__main__":
    sys.exit(main())
