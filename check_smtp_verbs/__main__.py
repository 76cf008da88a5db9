"""Lets ``python -m check_smtp_verbs`` behave exactly like the console script."""

from check_smtp_verbs.entry import check

check()
