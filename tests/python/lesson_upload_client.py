"""The lesson's large-file upload client (day27, 上传大文件), made non-interactive.

Usage: python3 lesson_upload_client.py HOST PORT PATH [NAME]

Same wire steps as the lesson: struct.pack('i', len(json)) + the JSON header
{"file_name", "file_size"} + the raw bytes in 1024-byte reads; it never reads
a reply. Differences from the lesson, none of them on the wire: the address,
path and name come from argv; the size comes from os.path.getsize instead of
reading the whole file into memory (the lesson's `f.read()`); sendall instead
of send (same bytes, no silent short writes); no per-chunk print.
"""
import json
import os
import socket
import struct
import sys

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
name = sys.argv[4] if len(sys.argv) > 4 else os.path.basename(path)

client = socket.socket()
client.connect((host, port))

# 1. the file's size
file_size = os.path.getsize(path)
# 2. a dict with the file's name and size
send_dic = {
    'file_name': name,
    'file_size': file_size,
}
# 3. pack the header length, send it, then the JSON header
json_data = json.dumps(send_dic)
bytes_data = json_data.encode('utf-8')
headers = struct.pack('i', len(bytes_data))
client.sendall(headers)
client.sendall(bytes_data)
# 4. then the file's bytes, 1024 at a time
init_data = 0
with open(path, 'rb') as f:
    while init_data < file_size:
        send_data = f.read(1024)
        if not send_data:
            break
        client.sendall(send_data)
        init_data += len(send_data)
client.close()
print(f'sent {init_data} bytes')
