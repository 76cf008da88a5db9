"""The round trip: prove that the probe the check sent reached the mailbox.

``--data`` proves that a server accepted the message; a stuck queue, a broken content
filter or a failed LMTP hop behind it still answer 250.  So, on this path only, the
check logs in to the mailbox (IMAP or POP3), waits for its probe by Message-ID *and*
probe header, times the hop from the end of DATA to the message being visible, and
deletes exactly the probes it found.

Imported only when a round trip is asked for: imaplib and poplib are nothing a plain
check should pay for (tests/test_startup_imports.py pins that).

* :mod:`.url` reads ``imap://``, ``imaps://``, ``pop3://`` and ``pop3s://`` URLs;
* :mod:`.connection` opens the connection and the TLS layer within the deadline;
* :mod:`.imap` waits with IDLE (RFC 2177), or polls a server without it;
* :mod:`.pop3` polls, since POP3 shows a mailbox as it was at login;
* :mod:`.state` remembers the probes of the asynchronous mode between runs.
"""
