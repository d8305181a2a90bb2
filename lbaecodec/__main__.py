"""`python -m lbaecodec ...` runs the command line (as torchrun and machines without the script need)."""

from .cli import main

main()
