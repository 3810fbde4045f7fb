"""The lesson's UDP chat client (day27, 聊天室 客户端), made non-interactive.

The lesson's loop was:

    send_msg = input('客户端1: ').encode('utf-8')
    client.sendto(send_msg, server_ip_port)   # 发送消息必须要加上对方地址
    msg = client.recv(1024)                   # 能接收任何人的消息
    print(msg.decode('utf-8'))

Here the line comes from argv instead of input(), and one round is made.

usage: lesson_chat_client.py HOST PORT LINE
The client's own port is printed to stderr (the server names it ip:port).
A timeout (not in the lesson) keeps a lost datagram from hanging the test.
"""
import socket
import sys

host, port, line = sys.argv[1], int(sys.argv[2]), sys.argv[3]

client = socket.socket(type=socket.SOCK_DGRAM)
client.settimeout(10)
server_ip_port = (host, port)

send_msg = line.encode('utf-8')
client.sendto(send_msg, server_ip_port)
print('port', client.getsockname()[1], file=sys.stderr)
msg = client.recv(1024)
print(msg.decode('utf-8'))
