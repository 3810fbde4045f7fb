"""The lesson's command server, corrected: no deadlock, no endless loop.

Usage: python3 cmd_server.py [HOST PORT]   (default 127.0.0.1 8000)
Still a remote shell with no password: keep it on the loopback.
"""
import hashlib
import os
import signal
import socket
import subprocess
import sys

from framing import recv_json, send_json

TIMEOUT = 10  # seconds a command may run


def run_shell(cmd):
    # A session of its own, so a timeout can kill the shell and its children.
    proc = subprocess.Popen(cmd, shell=True, start_new_session=True,
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timed_out = False
    try:
        # communicate() reads stdout and stderr at the same time: no deadlock.
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        timed_out = True
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    return stdout, stderr, code, timed_out


def serve(conn):
    while True:
        request = recv_json(conn)
        if request is None:  # the client left: stop, do not loop on b''
            return
        stdout, stderr, code, timed_out = run_shell(request['cmd'])
        body = stdout + stderr
        send_json(conn, {
            'filename': 'stdout+stderr',
            'total_size': len(body),
            'hash': hashlib.sha256(body).hexdigest(),
            'exit_code': code,
            'stdout_size': len(stdout),
            'stderr_size': len(stderr),
            'timed_out': timed_out,
        })
        conn.sendall(body)


host = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
server = socket.create_server((host, port))
print('listening on %s:%d' % server.getsockname()[:2], flush=True)
while True:
    conn, client_addr = server.accept()
    with conn:
        try:
            serve(conn)
        except (OSError, ValueError, KeyError, TypeError) as e:
            # One bad client ends its own connection, not the server.
            print(client_addr, 'dropped:', repr(e), file=sys.stderr)
