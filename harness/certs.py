"""Throw-away certificates for TLS tests: a CA, and a server certificate it signs.

Made at test time with the ``cryptography`` package (nothing is checked in,
nothing outlives the test's temporary directory): a self-signed CA, and a
certificate for ``localhost`` and 127.0.0.1 signed by it, so a client can
verify the server (name and chain) against the test's CA file, and fail
against another CA's.
"""

import dataclasses
import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID = datetime.timedelta(days=2)


@dataclasses.dataclass(frozen=True)
class ServerFiles:
    """PEM files: ``cafile`` (the CA that signed the server), ``certfile`` and ``keyfile`` (the server's)."""

    cafile: pathlib.Path
    certfile: pathlib.Path
    keyfile: pathlib.Path


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path, key):
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _write_cert(path, cert):
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_ca(folder, name="hutch test CA"):
    """A self-signed CA in ``folder``: returns (certificate file, certificate, key)."""
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path = pathlib.Path(folder) / f"{name.replace(' ', '-')}.pem"
    _write_cert(path, cert)
    return path, cert, key


def make_server_files(folder, hosts=("localhost",), addresses=("127.0.0.1",)):
    """A CA and a server certificate (``hosts`` and ``addresses`` as subject alternative names)."""
    folder = pathlib.Path(folder)
    cafile, ca_cert, ca_key = make_ca(folder)
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(host) for host in hosts] + [
        x509.IPAddress(ipaddress.ip_address(address)) for address in addresses
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    certfile, keyfile = folder / "server.pem", folder / "server.key"
    _write_cert(certfile, cert)
    _write_key(keyfile, key)
    return ServerFiles(cafile, certfile, keyfile)
