// One plain and one streamed completion through the official Node `openai` SDK.
// Input (stdin): {"baseURL", "body", "timeoutMs"}; the key comes from CHATCONFORM_KEY.
// Output (stdout, one line): {"plain": text, "streamed": text} or {"error": message}.
import OpenAI from "openai";

const input = JSON.parse(await new Promise((resolve) => {
  let buf = "";
  process.stdin.on("data", (d) => (buf += d));
  process.stdin.on("end", () => resolve(buf));
}));

const client = new OpenAI({
  baseURL: input.baseURL,
  apiKey: process.env.CHATCONFORM_KEY,
  timeout: input.timeoutMs,
  maxRetries: 0,
});

try {
  const { stream: _ignored, ...body } = input.body;
  const plain = await client.chat.completions.create(body);
  const parts = [];
  const stream = await client.chat.completions.create({ ...body, stream: true });
  for await (const chunk of stream) {
    for (const choice of chunk.choices ?? []) {
      if (choice.delta?.content) parts.push(choice.delta.content);
    }
  }
  console.log(JSON.stringify({ plain: plain.choices[0].message.content, streamed: parts.join("") }));
} catch (err) {
  console.log(JSON.stringify({ error: `${err?.constructor?.name ?? "Error"}: ${err?.message ?? err}` }));
  process.exitCode = 1;
}
