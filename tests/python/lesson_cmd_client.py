"""The lesson's (day27) remote command client, made non-interactive.

Usage: python3 lesson_cmd_client.py HOST PORT COMMAND...

Exactly the lesson's wire steps for each command, with the commands taken
from argv instead of input():
  1. client.send(cmd.encode('utf8'))             -- raw command bytes, no frame
  2. struct.unpack('i', client.recv(4))[0]       -- length of the JSON header
  3. client.recv(header_len), json.loads(...)    -- the header; uses 'total_size'
  4. recv(1024) until total_size bytes arrived   -- the body
and then the lesson's print(res.decode('utf8')).

For the tests, each header is also printed to stderr as one JSON line.
"""
from socket import *
import json
import struct
import sys

host, port, cmds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

client = socket(AF_INET, SOCK_STREAM)
client.connect((host, port))
for cmd in cmds:
    if len(cmd) == 0: continue
    client.send(cmd.encode('utf8'))
    # 1. 先收4个字节,这4个字节中包含报头的长度
    header_len = struct.unpack('i', client.recv(4))[0]
    # 2. 再接收报头
    header_bytes = client.recv(header_len)
    # 3. 从包头中解析出想要的东西
    header_json = header_bytes.decode('utf8')
    header_dict = json.loads(header_json)
    total_size = header_dict['total_size']
    # 4. 再收真实的数据
    recv_size = 0
    res = b''
    while recv_size < total_size:
        data = client.recv(1024)
        res += data
        recv_size += len(data)
    print(res.decode('utf8'))
    print(json.dumps(header_dict), file=sys.stderr)
client.close()
