"""The ``mar`` command line. Each sub-command module defines ``register(subparsers)`` and
imports torch (or anything heavy) only inside its handlers, so ``mar --help`` stays fast."""
