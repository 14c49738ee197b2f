"""Publishing to the NATS server the client suites share (CLIENT_NATS_ADDRESS, host:port)."""

import os
import socket


def publish(subject, payload):
    """Publishes `payload` on `subject` with NATS's own text protocol, as any NATS client does."""
    host, port = os.environ["CLIENT_NATS_ADDRESS"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        stream = connection.makefile("rwb")
        assert stream.readline().startswith(b"INFO"), "not a NATS server"
        stream.write(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        stream.write(f"PUB {subject} {len(payload)}\r\n".encode() + payload + b"\r\nPING\r\n")
        stream.flush()
        answer = stream.readline()
        assert answer.startswith(b"PONG"), answer
