"""``python -m fastreq``: the same as the ``fastreq`` command."""

from fastreq.cli import main

if __name__ == "__main__":
    main()
