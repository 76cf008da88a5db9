"""notify_sms_mail: alerts that do not travel through the mail system they report on.

The message goes straight to the phone carrier's email-to-SMS gateway (or the MX
hosts of the recipient's domain), never through the local relay, which may be the
very thing that is broken.  Modules: ``cli`` (options and macros to settings, and
the run), ``macros`` (what happened), ``message`` (the SMS-sized mail),
``throttle`` (the decision and the locked state file), ``delivery`` (SMTP to the
gateway), ``standalone`` (running a check when there is no monitoring server).
"""
