"""The lesson's (day27) remote command server, for driving with `cmd_client --raw`.

Usage: python3 lesson_cmd_server.py

The lesson's code, with three changes so a test can run it:
  - binds port 0 (not 8000) and prints `listening on 127.0.0.1:PORT`;
  - stops at a closed connection (`if not cmd: break`; the lesson loops
    forever there), and serves a single connection;
  - no `print(conn, client_addr)` on stdout.
Everything on the wire is the lesson's: recv(1024) of raw command bytes,
struct.pack('i', len(header)), the JSON header, stdout, stderr.
"""
from socket import *
import subprocess
import struct
import json
import sys

server = socket(AF_INET, SOCK_STREAM)
server.bind(('127.0.0.1', 0))
server.listen(5)
print('listening on 127.0.0.1:%d' % server.getsockname()[1], flush=True)
conn, client_addr = server.accept()
while True:
    cmd = conn.recv(1024)
    if not cmd: break
    obj = subprocess.Popen(cmd.decode('utf8'),
                           shell=True,
                           stderr=subprocess.PIPE,
                           stdout=subprocess.PIPE)
    stderr = obj.stderr.read()
    stdout = obj.stdout.read()
    # 制作报头
    header_dict = {
        'filename': 'a.txt',
        'total_size': len(stdout) + len(stderr),
        'hash': 'xasf123213123'
    }
    header_json = json.dumps(header_dict)
    header_bytes = header_json.encode('utf8')
    # 1. 先把报头的长度len(header_bytes)打包成4个bytes,然后发送
    conn.send(struct.pack('i', len(header_bytes)))
    # 2. 发送报头
    conn.send(header_bytes)
    # 3. 发送真实的数据
    conn.send(stdout)
    conn.send(stderr)
conn.close()
server.close()
