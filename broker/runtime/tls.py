"""The TLS configuration nsqd builds from its ``--tls-*`` flags (it reads files: runtime, not core).

nsqd's ``buildTLSConfig``, in Python's ``ssl``: no context when neither
``--tls-cert`` nor ``--tls-key`` is given; otherwise the key pair, the lowest
version, and the client-certificate policy.  One policy differs, and refuses
rather than weakens: Go's ``require`` (``tls.RequireAnyClientCert``) takes any
client certificate without checking it, which Python's ``ssl`` cannot do (it
verifies every certificate it asks for).  So ``require`` needs
``--tls-root-ca-file`` here and then verifies against it, as ``require-verify``
does; without a root CA, nsqd refuses to start and says why.  And
``--tls-min-version`` below ``tls1.2`` leaves the floor to the system's
OpenSSL configuration (Debian's: TLS 1.2), as Python no longer lets a program
ask for TLS 1.0 or 1.1 without a deprecation.
"""

from __future__ import annotations

import os
import ssl

__all__ = ["TLSConfigError", "client_context", "server_context"]

_MIN_VERSIONS = {
    # Below TLS 1.2, the floor is what the system's OpenSSL allows (Debian's allows
    # TLS 1.2 and up; SSL 3.0 no build speaks): Python deprecates asking for less.
    "ssl3.0": ssl.TLSVersion.MINIMUM_SUPPORTED,
    "tls1.0": ssl.TLSVersion.MINIMUM_SUPPORTED,
    "tls1.1": ssl.TLSVersion.MINIMUM_SUPPORTED,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}


class TLSConfigError(ValueError):
    """The flags name files that do not make a TLS configuration; the text says why, as Go does."""


def _check_readable(path: str) -> None:
    # Go's os.ReadFile error text, which nsqd prints: "open PATH: no such file or directory".
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise TLSConfigError(f"open {path}: {reason}") from None


def server_context(
    cert: str, key: str, *, client_auth_policy: str = "", root_ca_file: str = "", min_version: str = "tls1.0"
) -> ssl.SSLContext | None:
    """The server context of nsqd's TCP upgrade and HTTPS; None when TLS is not configured."""
    if not cert and not key:
        return None
    _check_readable(cert)
    _check_readable(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _MIN_VERSIONS.get(min_version, ssl.TLSVersion.MINIMUM_SUPPORTED)
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise TLSConfigError(f"tls: failed to load the key pair {cert}, {key}: {exc.reason or exc}") from None
    if root_ca_file:
        _check_readable(root_ca_file)
        try:
            ctx.load_verify_locations(root_ca_file)
        except ssl.SSLError:
            raise TLSConfigError("failed to append certificate to pool") from None
    if client_auth_policy in ("require", "require-verify"):
        if not root_ca_file:
            raise TLSConfigError(
                f"--tls-client-auth-policy={client_auth_policy} needs --tls-root-ca-file here"
                " (Python's ssl verifies every client certificate it asks for, so it cannot take any"
                " certificate unchecked as Go's 'require' does)"
            )
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_context(
    *,
    root_ca_file: str = "",
    cert: str = "",
    key: str = "",
    insecure_skip_verify: bool = False,
    min_version: str = "tls1.0",
) -> ssl.SSLContext:
    """A client context: verifies the server against ``root_ca_file`` (or the system's CAs)."""
    ctx = ssl.create_default_context(cafile=root_ca_file or None)
    ctx.minimum_version = _MIN_VERSIONS.get(min_version, ssl.TLSVersion.MINIMUM_SUPPORTED)
    if insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert or key:
        ctx.load_cert_chain(cert, key or None)
    return ctx
