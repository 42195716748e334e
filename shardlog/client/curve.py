"""CurveZMQ on the client's side, and the key files both sides read.

Keys are the certificate files of ``zmq.auth``: ``NAME.key`` holds a public
key, ``NAME.key_secret`` the public and the secret key. A client takes its
own secret file and the server's public file.
"""

import zmq
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


def connect_dealer(ctx, endpoint, client_secret_file=None, server_public_file=None):
    """A DEALER socket of ``ctx`` connected to ``endpoint``, a CURVE client when
    key files are given (both clients connect so, and again after a timeout)."""
    sock = ctx.socket(zmq.DEALER)
    try:
        if client_secret_file or server_public_file:
            client_curve(sock, client_secret_file, server_public_file)
        sock.connect(endpoint)
    except zmq.ZMQError as exc:
        sock.close()
        raise InvalidArgument(f"cannot connect to {endpoint!r}: {exc}") from None
    except BaseException:
        sock.close()
        raise
    return sock
