"""A stub OpenAI-compatible server on the loopback, standing in for vLLM: a real HTTP server in
a thread that answers /v1/models and /v1/chat/completions. What it answers is a script the
test gives: a function of the two answers, in the order the judge was shown them."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# the default prompt's markers around each answer
ANSWER = re.compile(r"\[Answer ([AB])\]\n(.*?)\n\[End of answer \1\]", re.S)

Script = Callable[[str, str], str]  # (answer shown first, answer shown second) -> reply


@contextmanager
def stub_server(script: Script, key: str | None = None,
                model: str = "stub-judge-7b") -> Iterator[tuple[str, list[dict]]]:
    """(the server's /v1 URL, the requests it received) while the block runs."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _allowed(self) -> bool:
            if key is not None and self.headers.get("Authorization") != f"Bearer {key}":
                self._send(401, {"error": {"message": "bad key"}})
                return False
            return True

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self._allowed():
                self._send(200, {"object": "list", "data": [{"id": model, "object": "model"}]})

        def do_POST(self) -> None:  # noqa: N802
            if not self._allowed():
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            text = body["messages"][-1]["content"]
            answers = dict(ANSWER.findall(text))
            reply = script(answers["A"], answers["B"])
            self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                 "role": "assistant", "content": reply}}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
