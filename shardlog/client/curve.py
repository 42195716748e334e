"""CurveZMQ on the client's side, and the key files both sides read.

Keys are the certificate files of ``zmq.auth``: ``NAME.key`` holds a public
key, ``NAME.key_secret`` the public and the secret key. A client takes its
own secret file and the server's public file.
"""

import zmq.auth

from shardlog.errors import InvalidArgument


def load_keys(path, need_secret):
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read key file {path}: {exc}") from None
    if need_secret and secret is None:
        raise InvalidArgument(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def client_curve(sock, client_secret_file, server_public_file):
    """Make ``sock`` a CURVE client of the server whose public key file is given."""
    public, secret = load_keys(client_secret_file, need_secret=True)
    server_public, _ = load_keys(server_public_file, need_secret=False)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public
