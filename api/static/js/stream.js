// The live stream: GET /api/dashboard/stream read with fetch(), not EventSource,
// because EventSource cannot send the Authorization header the API asks for.
// `readEvents` parses text/event-stream; `followStream` is the reconnect logic.

const FIRST_DELAY_MS = 500; // the first retry waits 0.25-0.5 s, then doubles
const MAX_DELAY_MS = 15000;
const SILENCE_LIMIT_MS = 45000; // 3 keep-alives missed: the connection is dead
const FINAL_STATUSES = new Set([401, 403, 422]); // retrying cannot help

// The events of a text/event-stream body: {type, data, id} (id: the last one seen).
// `onBytes` is called whenever bytes arrive, keep-alive comments included.
export async function* readEvents(body, onBytes = () => {}) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let type = "";
  let data = [];
  let lastId = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onBytes();
      buffer += value;
      const lines = buffer.split(/\r\n|\n|\r(?!$)/); // a lone \r at the end may be half of \r\n
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (data.length) yield { type: type || "message", data: data.join("\n"), id: lastId };
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: ": keep-alive"
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") data.push(text);
        else if (field === "event") type = text;
        else if (field === "id" && !text.includes("\0")) lastId = text;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// Follow the stream at `url` until `signal` aborts or the API refuses for good.
// Sends the token in the Authorization header and, after the first event, the
// last id in Last-Event-ID (so a reconnect gets only a state it has not seen).
// Reconnects after any failure (network, 503, the stream ending, 45 s of
// silence) with exponential backoff and jitter. Calls `onEvent(body, id)` for
// each dashboard event and `onStatus(state, detail)` with state "connecting",
// "live", "reconnecting" (detail: {retryInMs, reason}) or "failed" (detail: the
// API's answer: {status, message, field}).
export async function followStream(url, { token, onEvent, onStatus, signal }) {
  let lastId = null;
  let failures = 0;
  onStatus("connecting");
  while (!signal.aborted) {
    const attempt = new AbortController();
    const abort = () => attempt.abort();
    signal.addEventListener("abort", abort);
    let silence = setTimeout(abort, SILENCE_LIMIT_MS);
    const heard = () => {
      clearTimeout(silence);
      silence = setTimeout(abort, SILENCE_LIMIT_MS);
    };
    let reason = "the stream ended";
    try {
      const headers = { Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const response = await fetch(url, { headers, cache: "no-store", signal: attempt.signal });
      if (!response.ok) {
        const problem = await problemOf(response);
        if (FINAL_STATUSES.has(response.status)) {
          onStatus("failed", problem);
          return;
        }
        reason = problem.message;
      } else {
        failures = 0;
        onStatus("live");
        for await (const event of readEvents(response.body, heard)) {
          lastId = event.id;
          if (event.type === "dashboard") onEvent(JSON.parse(event.data), event.id);
        }
      }
    } catch (error) {
      reason = error.name === "AbortError" ? "no answer for 45 s" : "the API is unreachable";
    } finally {
      clearTimeout(silence);
      signal.removeEventListener("abort", abort);
    }
    if (signal.aborted) return;
    failures += 1;
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (failures - 1));
    const retryInMs = Math.round(ceiling * (0.5 + Math.random() / 2));
    onStatus("reconnecting", { retryInMs, reason });
    await sleep(retryInMs, signal);
  }
}

// {status, message, field} of an answer that is not 2xx (the API's JSON body).
export async function problemOf(response) {
  let detail = null;
  try {
    detail = (await response.json()).detail;
  } catch {
    // not JSON: keep the status text
  }
  if (Array.isArray(detail) && detail.length) {
    return { status: response.status, message: detail[0].message, field: detail[0].field };
  }
  const message = typeof detail === "string" ? detail : response.statusText || "error";
  return { status: response.status, message, field: null };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
