"""The lesson's upload client, corrected: constant memory, sendall, an answer.

Usage: python3 upload_client.py HOST PORT PATH
The token, if the server wants one, comes from the UPLOAD_TOKEN variable.
"""
import hashlib
import os
import socket
import sys

from framing import recv_json, send_json

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
file_size = os.path.getsize(path)  # the size without reading the file
header = {'file_name': os.path.basename(path), 'file_size': file_size}
if os.environ.get('UPLOAD_TOKEN'):
    header['token'] = os.environ['UPLOAD_TOKEN']

with socket.create_connection((host, port), timeout=60) as client:
    send_json(client, header)
    digest = hashlib.sha256()
    sent = 0
    with open(path, 'rb') as f:
        while sent < file_size:
            chunk = f.read(min(65536, file_size - sent))  # one chunk in memory
            if not chunk:
                sys.exit('the file shrank while it was being sent')
            client.sendall(chunk)  # all of it, or an exception
            digest.update(chunk)
            sent += len(chunk)
    answer = recv_json(client)

if answer is None:
    sys.exit('sent everything, but the server did not confirm')
if not answer.get('ok'):
    sys.exit('refused: %s' % answer.get('error'))
if answer.get('sha256') != digest.hexdigest():
    sys.exit('the server stored different bytes')
print(f'sent {sent} bytes, sha256 {digest.hexdigest()}, confirmed')
