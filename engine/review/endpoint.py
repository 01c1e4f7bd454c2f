"""A judge behind an OpenAI-compatible server (a local vLLM or llama.cpp server, or a hosted
API): `POST {url}/chat/completions`, greedy. The key, when the server wants one, is read from an
environment variable each time and never written anywhere (not in the store, not in a log).
Standard library only: urllib, a thread pool for requests in parallel."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tunelab.engine.errors import DataError

DEFAULT_KEY_VARIABLE = "OPENAI_API_KEY"


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server; `model` is the name the server gives its model (None: the
    first it lists under /models)."""

    url: str  # e.g. http://127.0.0.1:8000/v1
    model: str | None = None
    key_variable: str = DEFAULT_KEY_VARIABLE
    max_tokens: int = 512
    timeout: float = 120.0
    parallel: int = 4

    def _request(self, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.key_variable)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url.rstrip('/')}{path}", data=data,
                                         headers=headers, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                found: dict = json.loads(answer.read().decode("utf-8"))
                return found
        except urllib.error.HTTPError as error:
            said = error.read().decode("utf-8", "replace")[:300]
            hint = (f" (is the key in ${self.key_variable} right?)" if error.code in (401, 403)
                    else "")
            raise DataError(f"{self.url}{path} answered {error.code}{hint}: {said}",
                            "the judge's server refused") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DataError(f"cannot reach the judge's server at {self.url}: {reason}; is it "
                            "running (e.g. `vllm serve MODEL`), and is the URL its /v1?",
                            "no judge server") from None
        except json.JSONDecodeError:
            raise DataError(f"{self.url}{path} did not answer JSON: is it an OpenAI-compatible "
                            "server?", "not an OpenAI-compatible server") from None

    def model_name(self) -> str:
        """The model to ask: the one given, else the first the server lists."""
        if self.model:
            return self.model
        listed = self._request("/models").get("data") or []
        if not listed:
            raise DataError(f"{self.url}/models lists no model; pass --model NAME",
                            "no judge model")
        return str(listed[0]["id"])

    def complete(self, text: str, model: str) -> str:
        """The server's answer to one user message, greedy."""
        found = self._request("/chat/completions", {
            "model": model, "messages": [{"role": "user", "content": text}],
            "temperature": 0, "max_tokens": self.max_tokens})
        try:
            return str(found["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise DataError(f"{self.url}/chat/completions answered without choices[0].message: "
                            f"{json.dumps(found)[:200]}", "not an OpenAI-compatible server") from None

    def complete_all(self, texts: list[str], model: str) -> list[str]:
        """Each text's answer, `parallel` requests at a time, in order."""
        with ThreadPoolExecutor(max_workers=max(1, self.parallel)) as pool:
            return list(pool.map(lambda t: self.complete(t, model), texts))
