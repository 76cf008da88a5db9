"""check_smtp_verbs: an SMTP check that judges every verb of the conversation.

Kept empty on purpose: every check run imports this package, so nothing here may
cost start-up time.
"""

__version__ = "0.2.0"
