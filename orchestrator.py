#!/usr/bin/env python
"""Run a hyperparameter sweep for a CIFAR-100 classifier.

    python orchestrator.py --space search_spaces/part3.yaml --data PATH [--ood-dir DIR]

See README.md, and `python orchestrator.py --help` for every flag.
"""
import sys

from sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
