"""`python -m clickintent` = the `clickintent` command."""

from clickintent.cli import main

if __name__ == "__main__":
    main()
