"""`python -m worker.cli ...`: the `quota-worker` command (its modules load once)."""

from worker.cli import main

if __name__ == "__main__":
    main()
