"""CurveZMQ on the server's side: key files and the ZAP handler (the client's side is client/curve.py).

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

from shardlog.client.curve import load_keys
from shardlog.errors import InvalidArgument


def keygen(directory, name):
    """Write ``NAME.key`` and ``NAME.key_secret`` in ``directory``; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    for suffix in (".key", ".key_secret"):
        if os.path.exists(os.path.join(directory, name + suffix)):
            raise InvalidArgument(f"{os.path.join(directory, name + suffix)} exists; not overwriting a key")
    public, secret = zmq.auth.create_certificates(directory, name)
    os.chmod(secret, 0o600)
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
