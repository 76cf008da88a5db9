"""What happened: the notification macros, from options or Nagios's environment.

Icinga 2 passes macros as arguments; Nagios 4 (with ``enable_environment_macros``)
also exports them as ``NAGIOS_*`` variables, so a command definition can be as short
as ``notify_sms_mail --to ...``.  An option always wins over the environment.
Everything that ends up in a mail header is refused if it holds a control
character: a CR/LF in a host name must never become a header of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from check_smtp_verbs.addresses import InvalidInput, reject_control_characters

# Notification types as Nagios and Icinga 2 name them, grouped into the families that
# --types selects.  Both spellings of each are here (FLAPPINGSTOP/FLAPPINGEND, ...).
TYPE_FAMILIES: dict[str, str] = {
    "PROBLEM": "PROBLEM",
    "RECOVERY": "RECOVERY",
    "ACKNOWLEDGEMENT": "ACKNOWLEDGEMENT",
    "CUSTOM": "CUSTOM",
    "FLAPPINGSTART": "FLAPPING",
    "FLAPPINGSTOP": "FLAPPING",
    "FLAPPINGEND": "FLAPPING",
    "FLAPPINGDISABLED": "FLAPPING",
    "DOWNTIMESTART": "DOWNTIME",
    "DOWNTIMEEND": "DOWNTIME",
    "DOWNTIMECANCELLED": "DOWNTIME",
    "DOWNTIMEREMOVED": "DOWNTIME",
}
FAMILIES = ("PROBLEM", "RECOVERY", "ACKNOWLEDGEMENT", "FLAPPING", "DOWNTIME", "CUSTOM")

# Which environment macro fills which field, service notification first.
SERVICE_ENV = {
    "type": "NAGIOS_NOTIFICATIONTYPE",
    "host": "NAGIOS_HOSTNAME",
    "service": "NAGIOS_SERVICEDESC",
    "state": "NAGIOS_SERVICESTATE",
    "output": "NAGIOS_SERVICEOUTPUT",
    "long_output": "NAGIOS_LONGSERVICEOUTPUT",
}
HOST_ENV = SERVICE_ENV | {
    "service": "",
    "state": "NAGIOS_HOSTSTATE",
    "output": "NAGIOS_HOSTOUTPUT",
    "long_output": "NAGIOS_LONGHOSTOUTPUT",
}


class Notification(NamedTuple):
    type: str  # PROBLEM, RECOVERY, DOWNTIMESTART, ... (upper case)
    host: str
    service: str  # "" for a host notification
    state: str  # CRITICAL, DOWN, OK, ...
    output: str = ""
    long_output: str = ""

    @property
    def family(self) -> str:
        return TYPE_FAMILIES[self.type]

    @property
    def subject(self) -> str:
        """``mx1/smtp-verbs`` or just ``mx1``: what the alert is about."""
        return f"{self.host}/{self.service}" if self.service else self.host


def notification_type(value: str) -> str:
    """Upper-case ``value`` if it is a notification type Nagios or Icinga 2 sends."""
    reject_control_characters(value, "the notification type")
    upper = value.strip().upper()
    if upper not in TYPE_FAMILIES:
        raise InvalidInput(
            f"unknown notification type {value!r} (known: {', '.join(TYPE_FAMILIES)})"
        )
    return upper


def families(value: str) -> frozenset[str]:
    """``PROBLEM,RECOVERY`` -> the families --types admits; a type name stands for its family."""
    chosen = set()
    for item in value.split(","):
        name = item.strip().upper()
        if not name:
            continue
        if name in FAMILIES:
            chosen.add(name)
        elif name in TYPE_FAMILIES:
            chosen.add(TYPE_FAMILIES[name])
        else:
            raise InvalidInput(
                f"--types: unknown type {item.strip()!r} (known: {', '.join(FAMILIES)})"
            )
    if not chosen:
        raise InvalidInput("--types must name at least one type")
    return frozenset(chosen)


def from_options(options: Mapping[str, str | None], environ: Mapping[str, str]) -> Notification:
    """Fill each field from its option, else from its environment macro.

    A notification is about a service when --service is given or NAGIOS_SERVICEDESC
    is set; otherwise it is a host notification and reads the host macros.
    """
    service = options.get("service")
    if service is None:
        service = environ.get("NAGIOS_SERVICEDESC", "")
    names = SERVICE_ENV if service else HOST_ENV
    values: dict[str, str] = {}
    for field, variable in names.items():
        given = options.get(field)
        values[field] = (
            given if given is not None else environ.get(variable, "") if variable else ""
        )
    values["service"] = service
    if not values["type"]:
        raise InvalidInput("no notification type: give --type or set NAGIOS_NOTIFICATIONTYPE")
    if not values["host"]:
        raise InvalidInput("no host: give --host or set NAGIOS_HOSTNAME")
    values["type"] = notification_type(values["type"])
    for field in ("host", "service", "state"):
        reject_control_characters(values[field], f"--{field}")
        values[field] = values[field].strip()
    values["state"] = values["state"].upper()
    return Notification(**values)
