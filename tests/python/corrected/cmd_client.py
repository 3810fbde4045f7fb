"""The lesson's command client, corrected: framed requests, exact reads.

Usage: python3 cmd_client.py HOST PORT [COMMAND...]   (no command: a prompt)
The token, if the server wants one, comes from the CMD_TOKEN variable.
"""
import hashlib
import os
import socket
import sys

from framing import recv_exact, recv_json, send_json

host, port, commands = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
token = os.environ.get('CMD_TOKEN')


def run(client, cmd):
    request = {'cmd': cmd}
    if token:
        request['token'] = token
    send_json(client, request)
    header = recv_json(client)
    if header is None:
        raise ConnectionError('the server closed the connection')
    body = recv_exact(client, header['total_size'])
    if header.get('error'):
        raise RuntimeError(header['error'])
    if hashlib.sha256(body).hexdigest() != header['hash']:
        raise RuntimeError('the output does not match its hash')
    split = header.get('stdout_size', len(body))
    sys.stdout.buffer.write(body[:split])
    sys.stderr.buffer.write(body[split:])
    sys.stdout.flush()
    return header.get('exit_code', 0)


with socket.create_connection((host, port), timeout=60) as client:
    status = 0
    if commands:
        for cmd in commands:
            status = run(client, cmd)
    else:
        while True:
            try:
                cmd = input('please enter your cmd you want>>>')
            except EOFError:
                break
            if cmd:
                status = run(client, cmd)
sys.exit(status)
