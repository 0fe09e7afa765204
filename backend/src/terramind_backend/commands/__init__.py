"""Sub-commands of the `terramind` CLI; each module has ``register(subparsers)``."""
