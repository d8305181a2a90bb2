"""`python -m lbaecodec ...` runs the command line (as torchrun and machines without the script need)."""

from .cli import main

if __name__ == "__main__":  # spawned worker processes import this module too
    main()
