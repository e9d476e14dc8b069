"""An independent permessage-deflate client for tests/compression.rs: Python `websockets`
(RFC 7692 implemented from the RFC, in C-backed zlib). Sends a fixed sequence of messages to an
echo endpoint, checks every echo, and prints one JSON line: the extension the server agreed to
and the messages that came back right.

    python3 deflate_client.py URL [--client-no-context-takeover] [--server-max-window-bits N]
"""
import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory


async def main():
    url = sys.argv[1]
    args = sys.argv[2:]
    client_nct = "--client-no-context-takeover" in args
    server_bits = None
    if "--server-max-window-bits" in args:
        server_bits = int(args[args.index("--server-max-window-bits") + 1])
    factory = ClientPerMessageDeflateFactory(
        client_no_context_takeover=client_nct,
        server_max_window_bits=server_bits,
        client_max_window_bits=True,
    )
    doc = json.dumps({"items": [{"id": i, "name": "item %d" % i, "tags": ["a", "b"]} for i in range(200)]})
    messages = [
        doc,  # a 10 KiB JSON text
        doc,  # the same again (a client that keeps its context sends it in a few bytes)
        bytes(range(256)) * 400,  # 100 KiB binary
        "é" * 3000 + "ü",  # multi-byte text
        "short",  # under min_size: echoed uncompressed
    ]
    ok = 0
    async with connect(url, extensions=[factory], compression=None, max_size=2**24) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
        for m in messages:
            await ws.send(m)
            if await ws.recv() != m:
                raise SystemExit("echo differs for a message of %d" % len(m))
            ok += 1
        # a fragmented compressed message: websockets compresses it as one message in 3 frames
        parts = ["part one " * 100, "part two " * 100, "part three " * 100]
        await ws.send(parts)
        if await ws.recv() != "".join(parts):
            raise SystemExit("fragmented echo differs")
        ok += 1
    print(json.dumps({"extensions": extensions, "echoed": ok}))


asyncio.run(main())
