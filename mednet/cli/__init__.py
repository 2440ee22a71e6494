"""The ``mednet`` command: thin parsers that call library functions and print.

Each sub-command lives in its own module with ``register(subparsers)``; heavy
imports (torch, MONAI) happen inside the command, so ``mednet --help`` is instant.
"""
