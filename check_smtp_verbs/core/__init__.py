"""The core both programs stand on: one deadline, one SMTP client, TLS, AUTH and DNS.

``check_smtp_verbs`` (the check) and ``notify_sms_mail`` (the notifier) talk SMTP,
TLS and DNS the same way through these modules; a new capability (DANE, MTA-STS, a
round trip) adds a module beside them, never a second client or resolver.  Nothing
here imports the check's or the notifier's own modules: data flows one way.
"""
