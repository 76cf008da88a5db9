"""Lets ``python -m check_smtp_verbs.notify`` behave exactly like ``notify_sms_mail``."""

import sys

from check_smtp_verbs.notify.cli import main

sys.exit(main())
