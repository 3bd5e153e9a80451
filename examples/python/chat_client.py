#!/usr/bin/env python3
"""A complete chat client written from PROTOCOL.md alone, with nothing but the standard library.

Interactive:   python3 chat_client.py 127.0.0.1:6666 --name alice
               (type a line to send it to the current room; /join #room, /msg nick text,
               /me text, /quit)
Scripted:      python3 chat_client.py 127.0.0.1:6666 --name alice --say "hi" --wait-for "hello"
               (sends, then waits until a message containing the text arrives; exit 0 if it
               did, 1 on timeout) -- used by the server's test suite.
"""

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

VERSION = 1
HEADER = struct.Struct("!3I")  # version, body length, kind: 12 bytes, big-endian

# Kind numbers from PROTOCOL.md section 6 (only the ones this client uses).
HELLO, WELCOME, ERROR, PING, PONG, QUIT, NOTICE = 1, 2, 3, 4, 5, 6, 7
SEND, MESSAGE, ACK = 10, 11, 12
JOIN, PART = 20, 21
JOINED, PARTED, NICK_CHANGED, QUIT_EVENT, TOPIC_INFO = 30, 31, 32, 33, 34
NAME_LIST, HISTORY_PAGE = 36, 37


class Connection:
    """Frames over one TCP socket: a 12-byte header, then a JSON body."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self.buf = b""
        self.lock = threading.Lock()

    def send(self, kind, obj):
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        with self.lock:
            self.sock.sendall(HEADER.pack(VERSION, len(body), kind) + body)

    def recv(self):
        """Returns (kind, dict) for the next frame; a recv may hold half a frame or several."""
        while True:
            if len(self.buf) >= HEADER.size:
                version, length, kind = HEADER.unpack(self.buf[: HEADER.size])
                if version != VERSION:
                    raise ConnectionError(f"server speaks protocol version {version}")
                end = HEADER.size + length
                if len(self.buf) >= end:
                    body, self.buf = self.buf[HEADER.size : end], self.buf[end:]
                    return kind, json.loads(body.decode("utf-8"))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk


def clean(text):
    """Untrusted text: make control characters visible instead of sending them to the terminal."""
    return "".join(
        ch if ch == "\n" or (ch >= " " and ch != "\x7f" and not "\x80" <= ch <= "\x9f") else "?"
        for ch in str(text)
    )


def describe(kind, m):
    """One printable line for a server frame, or None to print nothing."""
    if kind == MESSAGE:
        where = m.get("room") or "(direct)"
        if m.get("action"):
            return f"{where} * {m['from']} {m['text']}"
        return f"{where} <{m['from']}> {m['text']}"
    if kind == JOINED:
        return f"{m['room']} -> {m['nick']} joined"
    if kind == PARTED:
        return f"{m['room']} <- {m['nick']} left"
    if kind == QUIT_EVENT:
        return f"<- {m['nick']} quit ({m.get('reason', '')})"
    if kind == NICK_CHANGED:
        return f"{m['old']} is now {m['new']}"
    if kind == TOPIC_INFO and m.get("topic"):
        return f"{m['room']} topic: {m['topic']}"
    if kind == NAME_LIST:
        return f"{m['room']} members: {' '.join(m['members'])}"
    if kind == HISTORY_PAGE:
        return "\n".join(describe(MESSAGE, x) for x in m["messages"]) or None
    if kind == ERROR:
        return f"error {m['code']}: {m['message']}"
    if kind == NOTICE:
        return f"notice {m['code']}: {m['text']}"
    return None


# Client message ids must be unique per nick, across runs too (PROTOCOL.md section 8): the
# server treats a reused id as a resend of the earlier message. A random prefix per run does it.
ID_PREFIX = os.urandom(4).hex()


def handshake(conn, name):
    """Says hello until the server accepts a nick; returns the welcome body."""
    conn.send(HELLO, {"name": name, "client": "python-example/1.0"})
    tries = 0
    while True:
        kind, m = conn.recv()
        if kind == WELCOME:
            return m
        if kind == ERROR and m["code"] == "nick_taken" and tries < 3:
            tries += 1
            print(clean(f"{m['message']}; trying {name}_"), file=sys.stderr)
            name += "_"
            conn.send(HELLO, {"name": name})
        elif kind == ERROR and m["code"] in ("nick_taken", "nick_invalid"):
            raise SystemExit(clean(f"cannot use that nick: {m['message']}"))
        elif kind == ERROR:
            raise ConnectionError(f"{m['code']}: {m['message']}")
        elif kind == PING:
            conn.send(PONG, m)


def scripted(conn, say, wait_for, timeout):
    """Sends `say` to #lobby, then waits for a message containing `wait_for`."""
    deadline = time.monotonic() + timeout
    conn.sock.settimeout(timeout)
    if say:
        conn.send(SEND, {"id": f"{ID_PREFIX}-0", "to": "#lobby", "text": say})
    while time.monotonic() < deadline:
        kind, m = conn.recv()
        if kind == PING:
            conn.send(PONG, m)
        line = describe(kind, m)
        if line:
            print(clean(line), flush=True)
        if kind == ACK:
            print(f"ack seq={m['seq']}", flush=True)
        if kind == MESSAGE and wait_for and wait_for in m["text"]:
            conn.send(QUIT, {"reason": "done"})
            return 0
        if not wait_for and kind == ACK:
            return 0
    return 1


def interactive(conn, room):
    def reader():
        try:
            while True:
                kind, m = conn.recv()
                if kind == PING:
                    conn.send(PONG, m)
                line = describe(kind, m)
                if line:
                    print(clean(line), flush=True)
        except (ConnectionError, OSError) as e:
            print(f"disconnected: {e}", file=sys.stderr)

    threading.Thread(target=reader, daemon=True).start()
    counter = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        counter += 1
        if line.startswith("/join "):
            room = line.split()[1]
            conn.send(JOIN, {"room": room})
        elif line.startswith("/part"):
            conn.send(PART, {"room": room})
        elif line.startswith("/msg "):
            _, nick, text = line.split(" ", 2)
            conn.send(SEND, {"id": f"{ID_PREFIX}-{counter}", "to": nick, "text": text})
        elif line.startswith("/me "):
            conn.send(SEND, {"id": f"{ID_PREFIX}-{counter}", "to": room, "text": line[4:], "action": True})
        elif line == "/quit":
            break
        elif line:
            conn.send(SEND, {"id": f"{ID_PREFIX}-{counter}", "to": room, "text": line})
    conn.send(QUIT, {"reason": "bye"})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("server", help="host:port")
    p.add_argument("--name", required=True)
    p.add_argument("--say")
    p.add_argument("--wait-for")
    p.add_argument("--timeout", type=float, default=10.0)
    a = p.parse_args()
    host, _, port = a.server.rpartition(":")
    conn = Connection(host, int(port))
    welcome = handshake(conn, a.name)
    print(f"connected as {welcome['nick']} to {welcome['server']}; rooms: {welcome['rooms']}", flush=True)
    if a.say is not None or a.wait_for is not None:
        sys.exit(scripted(conn, a.say, a.wait_for, a.timeout))
    interactive(conn, welcome["rooms"][0] if welcome["rooms"] else "#lobby")


if __name__ == "__main__":
    main()
