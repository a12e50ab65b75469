"""TLS for the gRPC port, where TLS and plaintext clients share one port (as on Apache's 5.x proxy).

The connection decides from its first byte (a TLS handshake record starts with 0x16; an HTTP/2 client preface
with ``P``) and, for TLS, runs an ``ssl.SSLObject`` over memory BIOs: asyncio's ``start_tls`` cannot take over a
transport whose first bytes were already read. ALPN offers ``h2`` only, which gRPC clients require.

The certificate is the operator's (``--grpc-tls-cert`` / ``--grpc-tls-key``) or, by default, a self-signed one
made once per data directory, as the Apache proxy makes its own; the 5.x Java client trusts any certificate
unless told otherwise, so its default (TLS on) works either way.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path

log = logging.getLogger("pocketmq.grpc")

TLS_HANDSHAKE_RECORD = 0x16


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])
    ctx.load_cert_chain(cert, key)
    return ctx


def self_signed(directory: Path) -> tuple[Path, Path]:
    """The certificate and key in ``directory``, made there (valid for 10 years) if absent."""
    cert, key = directory / "grpc-tls-cert.pem", directory / "grpc-tls-key.pem"
    if cert.exists() and key.exists():
        return cert, key
    # Imported here: only the first start with TLS in a data directory pays for it (about 30 ms).
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pocketmq")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(private_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    key_bytes = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_bytes)
    key.with_suffix(".tmp").replace(key)
    cert.with_suffix(".tmp").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    cert.with_suffix(".tmp").replace(cert)
    log.info("made a self-signed certificate for the gRPC port: %s", cert)
    return cert, key


class TlsSession:
    """Server-side TLS over memory buffers: bytes from the socket in, plaintext out, and the reverse."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.handshake_done = False

    def receive(self, data: bytes) -> tuple[bytes, bytes, bool]:
        """Feed socket bytes; return (plaintext, bytes to send back, whether the peer closed TLS)."""
        self._incoming.write(data)
        plaintext = bytearray()
        closed = False
        if not self.handshake_done:
            try:
                self._ssl.do_handshake()
                self.handshake_done = True
            except ssl.SSLWantReadError:
                return b"", self._outgoing.read(), False
        while True:
            try:
                chunk = self._ssl.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            plaintext += chunk
        return bytes(plaintext), self._outgoing.read(), closed

    def send(self, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext``; return the bytes to write to the socket."""
        self._ssl.write(plaintext)
        return self._outgoing.read()

    @property
    def alpn(self) -> str | None:
        return self._ssl.selected_alpn_protocol()
