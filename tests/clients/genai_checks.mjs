// Checks that drive @google/genai (the official JS SDK, pinned in package.json) against a
// genroute gateway, for tests/server/test_genai_js_e2e.py. Run as
//   node genai_checks.mjs '{"url": "http://127.0.0.1:PORT", "key": "sk-..."}'
// Prints one JSON object: for each check, {ok, value, http} or {ok: false, error, http},
// where `http` lists the requests the SDK sent (method, path, query, auth header, body).
import { GoogleGenAI } from "@google/genai";
import { OAuth2Client } from "google-auth-library";

const { url, key } = JSON.parse(process.argv[2]);
const seen = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  const target = new URL(typeof input === "string" ? input : input.url);
  const headers = new Headers(init.headers || (typeof input === "string" ? {} : input.headers));
  let body = null;
  try {
    body = typeof init.body === "string" ? JSON.parse(init.body) : null;
  } catch {
    body = null;
  }
  const auth = headers.get("x-goog-api-key")
    ? "x-goog-api-key"
    : headers.get("authorization")
      ? headers.get("authorization").split(" ")[0]
      : null;
  const credential = headers.get("x-goog-api-key") || (headers.get("authorization") || "").split(" ")[1];
  seen.push({ method: init.method || "GET", path: target.pathname, query: target.search, auth, credential, body });
  return realFetch(input, init);
};

const textOf = (response) => response.text;
const shapes = (chunks) =>
  chunks.map((c) => {
    const candidate = c.candidates[0]; // what code written against Gemini reads on every chunk
    return {
      role: candidate.content.role,
      parts: candidate.content.parts.map((p) => p.text ?? null),
      finishReason: candidate.finishReason ?? null,
      usage: c.usageMetadata ?? null,
    };
  });

async function collect(stream) {
  const chunks = [];
  for await (const chunk of await stream) chunks.push(chunk);
  return chunks;
}

async function everything(ai, chat) {
  const reply = await ai.models.generateContent({ model: chat, contents: "hello js" });
  const chunks = await collect(ai.models.generateContentStream({ model: chat, contents: "stream js" }));
  const counted = await ai.models.countTokens({ model: chat, contents: "one two three" });
  const embedded = await ai.models.embedContent({ model: "embedder", contents: ["first text", "second"] });
  return {
    text: textOf(reply),
    usage: reply.usageMetadata,
    stream: shapes(chunks),
    totalTokens: counted.totalTokens,
    vectors: embedded.embeddings.map((e) => e.values.length),
  };
}

const checks = {
  // The Gemini API, as a new user points the SDK at genroute: only baseUrl and the key.
  async gemini_api() {
    const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: url } });
    return everything(ai, "gpt-group");
  },
  async gemini_api_anthropic_stream() {
    const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: url } });
    const chunks = await collect(ai.models.generateContentStream({ model: "claude-group", contents: "stream js" }));
    return shapes(chunks);
  },
  // gemini-* names on a model that does not reason, with a thinking config and sampling.
  async thinking_on_a_wildcard() {
    const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: url } });
    const config = { thinkingConfig: { thinkingBudget: 1024, includeThoughts: true }, temperature: 0.3 };
    const reply = await ai.models.generateContent({ model: "gemini-3.1-pro-preview", contents: "js wildcard", config });
    const reasoner = await ai.models.generateContent({ model: "reasoner", contents: "js reasoner", config });
    return { wildcard: textOf(reply), reasoner: textOf(reasoner) };
  },
  async model_descriptions() {
    const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: url } });
    const describe = (m) => ({
      name: m.name,
      inputTokenLimit: m.inputTokenLimit ?? null,
      outputTokenLimit: m.outputTokenLimit ?? null,
      supportedActions: m.supportedActions ?? null,
    });
    const listed = [];
    for await (const model of await ai.models.list()) listed.push(model.name);
    return {
      embedder: describe(await ai.models.get({ model: "embedder" })),
      chat: describe(await ai.models.get({ model: "gpt-group" })),
      listed,
    };
  },
  async tuned_model() {
    const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: url } });
    return textOf(await ai.models.generateContent({ model: "tunedModels/my-tune", contents: "tuned js" }));
  },
  // Vertex AI with a project: the genroute key as an OAuth bearer token.
  async vertex_project() {
    const authClient = new OAuth2Client();
    authClient.setCredentials({ access_token: key, expiry_date: Date.now() + 3600_000 });
    const ai = new GoogleGenAI({
      vertexai: true,
      project: "my-project",
      location: "us-central1",
      googleAuthOptions: { authClient },
      httpOptions: { baseUrl: url },
    });
    return everything(ai, "claude-group");
  },
  // Vertex AI express mode: an API key, no project.
  async vertex_express() {
    const ai = new GoogleGenAI({ vertexai: true, apiKey: key, httpOptions: { baseUrl: url } });
    return everything(ai, "gpt-group");
  },
};

const results = {};
for (const [name, check] of Object.entries(checks)) {
  const start = seen.length;
  try {
    results[name] = { ok: true, value: await check(), http: seen.slice(start) };
  } catch (error) {
    results[name] = { ok: false, error: String(error && error.stack ? error.stack : error), http: seen.slice(start) };
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
