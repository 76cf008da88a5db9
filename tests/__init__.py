"""Test-suite of check_smtp_verbs (a package so ``python -m tests.smtpd`` works)."""
