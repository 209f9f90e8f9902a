#!/usr/bin/env python3
"""Single entry point: no arguments opens the workstation; sub-commands run headless jobs.

``python main.py --help`` lists the commands.
"""
import sys

from core.cli import main

if __name__ == "__main__":
    sys.exit(main())
