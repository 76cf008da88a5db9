"""DANE, MTA-STS and TLS-RPT cost only the runs that ask for them."""

from __future__ import annotations

from tests.plugin import server_args
from tests.test_startup_imports import PACKAGE, loaded_modules

OURS = {f"{PACKAGE}.dane", f"{PACKAGE}.mta_sts", f"{PACKAGE}.tlsrpt", "http.client", "dns"}


def test_a_starttls_check_loads_no_dane_mta_sts_or_http(smtp_server, certs):
    server = smtp_server(tls_context=certs.context())
    args = server_args(server, "-S", "--ca-file", str(certs.ca_file))
    loaded = loaded_modules(f"from {PACKAGE}.cli import main\nmain()", *args)
    assert f"{PACKAGE}.secure" in loaded, "the plugin did not run STARTTLS"
    assert loaded & OURS == set()


def test_dane_loads_its_module_and_dns_but_not_mta_sts(mail_domain, certs, unbound):
    domain = mail_domain()
    domain.pin_leaf(1)
    args = ["-H", domain.hosts[0], "-p", str(domain.port), "-S", "--dane"]
    args += ["--resolver", unbound.address, "--ca-file", str(certs.ca_file)]
    loaded = loaded_modules(f"from {PACKAGE}.cli import main\nmain()", *args)
    assert {f"{PACKAGE}.dane", "dns"} <= loaded
    assert loaded & {f"{PACKAGE}.mta_sts", "http.client"} == set()
