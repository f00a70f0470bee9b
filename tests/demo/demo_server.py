#!/usr/bin/env python3
"""A tiny stdio MCP server for the demo config: no dependencies, Python 3.8+.

Tools: `echo` (returns its text), `add` (adds two numbers), `count` (counts to n with
progress notifications), `whoami` (shows which environment the broker gave it).
"""
import json
import os
import sys
import time

TOOLS = [
    {"name": "echo", "description": "Echo the text back",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
    {"name": "add", "description": "Add two numbers",
     "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}},
    {"name": "count", "description": "Count to n, one progress notification per step",
     "inputSchema": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 20}}}},
    {"name": "whoami", "description": "Show the environment variables this server was started with",
     "inputSchema": {"type": "object", "properties": {}}},
]


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def text(req_id, s):
    send({"jsonrpc": "2.0", "id": req_id, "result": {"content": [{"type": "text", "text": s}]}})


def main():
    print("demo server started", file=sys.stderr, flush=True)
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        req_id, method, params = msg.get("id"), msg.get("method"), msg.get("params") or {}
        if req_id is None or method is None:
            continue  # notifications and responses
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": req_id, "result": {
                "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mcp-broker-demo", "version": "1.0.0"}}})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": req_id, "result": {}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": req_id, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            name, args = params.get("name"), params.get("arguments") or {}
            if name == "echo":
                text(req_id, str(args.get("text", "")))
            elif name == "add":
                text(req_id, str(args.get("a", 0) + args.get("b", 0)))
            elif name == "count":
                n = max(1, min(20, int(args.get("n", 3))))
                token = (params.get("_meta") or {}).get("progressToken")
                for i in range(1, n + 1):
                    if token is not None:
                        send({"jsonrpc": "2.0", "method": "notifications/progress",
                              "params": {"progressToken": token, "progress": i, "total": n}})
                    time.sleep(0.2)
                text(req_id, "counted to %d" % n)
            elif name == "whoami":
                text(req_id, ", ".join(sorted(os.environ)))
            else:
                send({"jsonrpc": "2.0", "id": req_id, "error": {"code": -32602, "message": "unknown tool %s" % name}})
        else:
            send({"jsonrpc": "2.0", "id": req_id, "error": {"code": -32601, "message": "method not found"}})


if __name__ == "__main__":
    main()
