"""``python -m luigis_async``: the same command line as the ``luigis-async`` script."""

from luigis_async.cli import main

if __name__ == "__main__":
    main()
