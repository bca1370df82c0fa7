// One completion (plain or streamed) through the official Node `openai` SDK, with a copy of the
// response bytes the SDK parsed: the client's `fetch` is wrapped, and the response body is teed,
// one branch to the SDK, one read to its end into the copy (within the deadline and byte cap).
// Input (stdin): {"baseURL", "body", "mode": "plain"|"stream", "timeoutMs", "deadlineMs", "maxBytes"};
// the key comes from CHATCONFORM_KEY.
// Output (stdout, one line): {"text", "error", "capture": {method, url, requestHeaders, requestBody,
// status, headers: [[name, value]], chunks: [[ms, base64]], endedBy, error, headersMs, elapsedMs}}.
import OpenAI from "openai";

const input = JSON.parse(await new Promise((resolve) => {
  let buf = "";
  process.stdin.on("data", (d) => (buf += d));
  process.stdin.on("end", () => resolve(buf));
}));

const t0 = performance.now();
const since = () => performance.now() - t0;
const deadline = AbortSignal.timeout(input.deadlineMs);
let capture = null;
let copied = Promise.resolve();

async function copy(body, cap) {
  const reader = body.getReader();
  let size = 0;
  const stop = () => reader.cancel().catch(() => undefined);
  deadline.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        cap.endedBy = deadline.aborted ? "timeout" : "eof";
        break;
      }
      if (size + value.length > input.maxBytes) {
        cap.chunks.push([since(), Buffer.from(value.subarray(0, input.maxBytes - size)).toString("base64")]);
        cap.endedBy = "byte-cap";
        cap.error = `body exceeded ${input.maxBytes} bytes`;
        await stop();
        break;
      }
      size += value.length;
      cap.chunks.push([since(), Buffer.from(value).toString("base64")]);
    }
  } catch (err) {
    cap.endedBy = deadline.aborted ? "timeout" : "transport-error";
    cap.error = `${err?.name ?? "Error"}: ${err?.message ?? err}`;
  } finally {
    deadline.removeEventListener("abort", stop);
    cap.elapsedMs = since();
  }
}

async function teeFetch(url, init = {}) {
  const cap = {
    method: init.method ?? "GET",
    url: String(url instanceof Request ? url.url : url),
    requestHeaders: Object.fromEntries(new Headers(init.headers ?? {})),
    requestBody: typeof init.body === "string" ? init.body : null,
    status: null,
    headers: [],
    chunks: [],
    endedBy: "open",
    error: null,
    headersMs: null,
    elapsedMs: null,
  };
  capture = cap;
  // The network request is bounded by our deadline, not the SDK's signal: when the SDK gives up
  // (an error it raised, a break), only its branch is cancelled and the copy reads on to the end.
  let copying = Promise.resolve();
  const real = fetch(url, { ...init, signal: deadline, redirect: "manual" }).then(
    (response) => {
      cap.status = response.status;
      cap.headers = [...response.headers];
      cap.headersMs = since();
      if (!response.body) {
        cap.endedBy = "eof";
        cap.elapsedMs = since();
        return response;
      }
      const [forSdk, forCopy] = response.body.tee();
      copying = copy(forCopy, cap);
      return new Response(forSdk, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
    },
    (err) => {
      cap.endedBy = deadline.aborted ? "timeout" : "transport-error";
      cap.error = `${err?.name ?? "Error"}: ${err?.cause?.message ?? err?.message ?? err}`;
      cap.elapsedMs = since();
      throw err;
    },
  );
  copied = real.then(() => copying, () => undefined);
  const sdkSignal = init.signal;
  if (!sdkSignal) return real;
  const givenUp = new Promise((_, reject) => {
    const abort = () => reject(sdkSignal.reason ?? new DOMException("aborted", "AbortError"));
    if (sdkSignal.aborted) abort();
    else sdkSignal.addEventListener("abort", abort, { once: true });
  });
  return Promise.race([real, givenUp]);
}

const client = new OpenAI({
  baseURL: input.baseURL,
  apiKey: process.env.CHATCONFORM_KEY,
  timeout: input.timeoutMs,
  maxRetries: 0,
  fetch: teeFetch,
});

const out = { text: null, error: null, capture: null };
try {
  const { stream: _ignored, ...body } = input.body;
  if (input.mode === "plain") {
    const reply = await client.chat.completions.create(body, { signal: deadline });
    out.text = reply.choices?.[0]?.message?.content ?? null;
  } else {
    const parts = [];
    const stream = await client.chat.completions.create({ ...body, stream: true }, { signal: deadline });
    for await (const chunk of stream) {
      for (const choice of chunk.choices ?? []) {
        if (choice.delta?.content) parts.push(choice.delta.content);
      }
    }
    out.text = parts.join("");
  }
} catch (err) {
  out.error = `${err?.constructor?.name ?? "Error"}: ${err?.message ?? err}`;
}
await copied;
out.capture = capture;
console.log(JSON.stringify(out));
