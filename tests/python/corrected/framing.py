"""The lesson's header, read correctly: a recv loop that stops at n bytes."""
import json
import struct

MAX_HEADER = 64 * 1024  # refuse a hostile length before allocating it


def recv_exact(sock, n):
    """Exactly n bytes, however the network splits them."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 65536))
        if not chunk:  # b'': the peer closed
            raise ConnectionError(f'connection closed after {len(buf)} of {n} bytes')
        buf += chunk
    return bytes(buf)


def recv_json(sock):
    """One frame: a 4-byte length (struct 'i'), then that much JSON.

    Returns None when the peer closed cleanly before a new frame.
    """
    first = sock.recv(4)
    if not first:
        return None
    head = first + recv_exact(sock, 4 - len(first))
    (length,) = struct.unpack('<i', head)
    if not 0 <= length <= MAX_HEADER:
        raise ValueError(f'header length {length} refused')
    return json.loads(recv_exact(sock, length))


def send_json(sock, value):
    data = json.dumps(value).encode('utf-8')
    sock.sendall(struct.pack('<i', len(data)) + data)
