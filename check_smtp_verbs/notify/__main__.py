"""Lets ``python -m check_smtp_verbs.notify`` behave exactly like ``notify_sms_mail``."""

from check_smtp_verbs.entry import notify

notify()
