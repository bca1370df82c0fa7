"""Run the official OpenAI SDKs against a target (OAI-5): Python `openai` and Node `openai`.

Each SDK makes one plain and one streamed completion with only the base URL swapped; the texts are
compared with the raw HTTP calls by the suite. The key reaches the Node process through its
environment, never its command line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatconform.target import Target

NODE_SDK_SPEC = "openai@7"
NODE_DIR = Path(
    os.environ.get("CHATCONFORM_NODE_DIR", Path.home() / ".cache" / "chatconform" / "node")
)
NODE_SCRIPT = Path(__file__).with_name("sdk_node.mjs")
INSTALL_TIMEOUT_S = 180


@dataclass(slots=True)
class SdkResult:
    plain: str | None = None
    streamed: str | None = None
    error: str | None = None


def run_python(target: Target, body: dict[str, Any]) -> SdkResult:
    """The Python SDK in a daemon thread, bounded as a whole (the SDK bounds each read only)."""
    limit = target.limits.stream_timeout * 2 + 5
    box: list[SdkResult] = []
    worker = threading.Thread(target=lambda: box.append(_run_python(target, body)), daemon=True)
    worker.start()
    worker.join(limit)
    if not box:
        return SdkResult(error=f"the openai Python SDK did not finish in {limit:g} s")
    return box[0]


def _run_python(target: Target, body: dict[str, Any]) -> SdkResult:
    import openai

    lim = target.limits
    client = openai.OpenAI(
        base_url=target.base_url,
        api_key=target.api_key or "",
        timeout=lim.timeout,
        max_retries=0,
    )
    kwargs = {k: v for k, v in body.items() if k != "stream"}
    try:
        plain = client.chat.completions.create(**kwargs)
        text = plain.choices[0].message.content
        parts: list[str] = []
        stream = client.chat.completions.create(**kwargs, stream=True)
        for n, chunk in enumerate(stream):
            if n > 100_000:
                return SdkResult(text, None, "more than 100,000 chunks")
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    parts.append(choice.delta.content)
        return SdkResult(text, "".join(parts))
    except Exception as exc:  # the SDK's own errors are the finding
        return SdkResult(error=f"{type(exc).__name__}: {target.redact(str(exc))[:400]}")
    finally:
        client.close()


def node_unavailable() -> str | None:
    """Why the Node SDK cannot run here (None when it can); installs openai from npm once."""
    if shutil.which("node") is None:
        return "node is not installed: the Node openai SDK check needs Node.js"
    if (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
        return None
    if shutil.which("npm") is None:
        return "npm is not installed: cannot install the Node openai SDK"
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    cmd = ["npm", "install", "--prefix", str(NODE_DIR), NODE_SDK_SPEC]
    cmd += ["--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"npm install {NODE_SDK_SPEC} took over {INSTALL_TIMEOUT_S} s"
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        return f"npm install {NODE_SDK_SPEC} failed: {' '.join(tail)}"
    return None


def run_node(target: Target, body: dict[str, Any]) -> SdkResult:
    script = NODE_DIR / "sdk_node.mjs"
    shutil.copyfile(NODE_SCRIPT, script)
    env = {**os.environ, "CHATCONFORM_KEY": target.api_key or ""}
    payload = json.dumps(
        {"baseURL": target.base_url, "body": body, "timeoutMs": int(target.limits.timeout * 1000)}
    )
    limit = target.limits.stream_timeout * 2 + 10
    try:
        done = subprocess.run(
            ["node", str(script)],
            input=payload.encode(),
            capture_output=True,
            timeout=limit,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return SdkResult(error=f"the Node SDK did not finish in {limit:g} s")
    out = done.stdout.decode(errors="replace").strip()
    try:
        data = json.loads(out.splitlines()[-1]) if out else {}
    except ValueError:
        data = {}
    if done.returncode != 0 or "error" in data or not data:
        err = data.get("error") or done.stderr.decode(errors="replace").strip()[-400:]
        return SdkResult(error=target.redact(str(err)))
    return SdkResult(data.get("plain"), data.get("streamed"))
