"""CurveZMQ for the client socket: key files, the server's side, the client's side.

Keys are the certificate files of ``zmq.auth``: ``NAME.key`` holds a public
key, ``NAME.key_secret`` the public and the secret key. The server takes its
secret file and a directory of the public files of the clients it lets in;
a client takes its own secret file and the server's public file. Unknown keys
are refused by ZeroMQ's ZAP handler before any request is read.
"""

import os

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .errors import InvalidArgument


def keygen(directory, name):
    """Write ``NAME.key`` and ``NAME.key_secret`` in ``directory``; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    for suffix in (".key", ".key_secret"):
        if os.path.exists(os.path.join(directory, name + suffix)):
            raise InvalidArgument(f"{os.path.join(directory, name + suffix)} exists; not overwriting a key")
    public, secret = zmq.auth.create_certificates(directory, name)
    os.chmod(secret, 0o600)
    return public, secret


def load_keys(path, need_secret):
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read key file {path}: {exc}") from None
    if need_secret and secret is None:
        raise InvalidArgument(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def serve_curve(ctx, sock, secret_file, authorized_dir):
    """Make ``sock`` a CURVE server admitting the public keys in ``authorized_dir``.

    Returns the authenticator thread; stop it when the socket is closed.
    """
    if not os.path.isdir(authorized_dir):
        raise InvalidArgument(f"authorized keys directory {authorized_dir} does not exist")
    public, secret = load_keys(secret_file, need_secret=True)
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=os.fspath(authorized_dir))
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return auth


def client_curve(sock, client_secret_file, server_public_file):
    """Make ``sock`` a CURVE client of the server whose public key file is given."""
    public, secret = load_keys(client_secret_file, need_secret=True)
    server_public, _ = load_keys(server_public_file, need_secret=False)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public
