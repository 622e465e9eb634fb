// Checks that drive @google/genai's resource APIs (files, caches, batches) against a
// genroute gateway, for tests/server/test_genai_js_resources_e2e.py. Run as
//   node genai_resources.mjs '{"url": "http://127.0.0.1:PORT", "key": "sk-...", "groups": [...]}'
// Prints one JSON object: for each check, {ok, value, http} or {ok: false, error, http},
// where `http` lists the requests the SDK sent (method, path).
import { GoogleGenAI, createPartFromUri, createUserContent } from "@google/genai";

const { url, key, groups } = JSON.parse(process.argv[2]);
const seen = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  const target = new URL(typeof input === "string" ? input : input.url);
  seen.push({ method: init.method || "GET", path: target.pathname });
  return realFetch(input, init);
};

const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: url } });
const LONG = "The handbook says: " + "policy ".repeat(1500); // over Gemini's 1024-token minimum
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function listed(pager) {
  const names = [];
  for await (const item of await pager) names.push(item.name);
  return names;
}

async function refused(work) {
  try {
    await work();
  } catch (error) {
    return { status: error.status ?? null, message: String(error.message).slice(0, 300) };
  }
  return null;
}

const checks = {
  async files() {
    const blob = new Blob(["a,b\n1,2\n"], { type: "text/csv" });
    const file = await ai.files.upload({ file: blob, config: { mimeType: "text/csv", displayName: "numbers" } });
    const got = await ai.files.get({ name: file.name });
    const names = await listed(ai.files.list({ config: { pageSize: 10 } }));
    const answers = {};
    for (const model of groups) {
      const reply = await ai.models.generateContent({
        model,
        contents: createUserContent([createPartFromUri(file.uri, file.mimeType), "Read the numbers"]),
      });
      answers[model] = reply.text;
    }
    await ai.files.delete({ name: file.name });
    return {
      file: { name: file.name, state: file.state, sizeBytes: file.sizeBytes, mimeType: file.mimeType,
              displayName: file.displayName, sha256Hash: file.sha256Hash, uri: file.uri },
      got: { name: got.name, sizeBytes: got.sizeBytes },
      listed: names.includes(file.name),
      answers,
      afterDelete: await refused(() => ai.files.get({ name: file.name })),
    };
  },
  async caches() {
    const found = {};
    for (const model of groups) {
      const cache = await ai.caches.create({
        model,
        config: { contents: [LONG], systemInstruction: "Answer from the handbook.", ttl: "600s", displayName: `js ${model}` },
      });
      const got = await ai.caches.get({ name: cache.name });
      const names = await listed(ai.caches.list());
      const reply = await ai.models.generateContent({
        model, contents: "What does it say?", config: { cachedContent: cache.name },
      });
      await ai.caches.delete({ name: cache.name });
      found[model] = {
        name: cache.name, model: cache.model, displayName: got.displayName,
        tokens: got.usageMetadata?.totalTokenCount ?? null, listed: names.includes(cache.name),
        text: reply.text, afterDelete: await refused(() => ai.caches.get({ name: cache.name })),
      };
    }
    return found;
  },
  async batches() {
    const found = {};
    for (const model of groups) {
      const src = ["one", "two"].map((t) => ({ contents: [{ role: "user", parts: [{ text: `js batch ${t}` }] }] }));
      const job = await ai.batches.create({ model, src, config: { displayName: `js ${model}` } });
      let done = job;
      for (let i = 0; i < 400 && !["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"].includes(done.state); i++) {
        await sleep(50);
        done = await ai.batches.get({ name: job.name });
      }
      const names = await listed(ai.batches.list({ config: { pageSize: 50 } }));
      found[model] = {
        name: job.name, first: job.state, state: done.state, displayName: done.displayName,
        listed: names.includes(job.name),
        texts: (done.dest?.inlinedResponses ?? []).map((r) => r.response?.candidates?.[0]?.content?.parts?.map((p) => p.text ?? "").join("") ?? null),
      };
    }
    return found;
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
