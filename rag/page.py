"""The one web page of ``python -m rag serve``: ask a question, watch the cited answer stream in.

It posts to ``/ask/stream`` with the controls' values (``k``, ``filters`` written as
``key=value, key=value``, ``hybrid``) and reads the server-sent events (``token``,
``answer``, ``error``) from the response body. When the server wants an API key the page
shows a key field; the key stays in the tab's ``sessionStorage`` and goes out as
``Authorization: Bearer``. Text is inserted with ``textContent`` only, so nothing from the
index or the model is ever parsed as HTML. ``/?q=...`` asks at once.
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rag: ask the knowledge base</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
         color: #1d232a; background: #fff; }
  h1 { font-size: 1.4rem; }
  form { display: flex; gap: .5rem; }
  input { font: inherit; padding: .5rem .7rem; border: 1px solid #8894a0; border-radius: 6px; }
  #question { flex: 1; }
  button { font: inherit; padding: .5rem 1rem; border: 0; border-radius: 6px;
           background: #1f5fbf; color: #fff; }
  button:disabled { background: #8894a0; }
  #controls { display: flex; flex-wrap: wrap; gap: .4rem 1rem; align-items: center; margin: .6rem 0;
              font-size: .9rem; color: #3b4550; }
  #controls input { padding: .2rem .4rem; }
  #k { width: 4rem; }
  #filters { width: 14rem; }
  #api-key-row[hidden] { display: none; }
  #status { color: #5a6570; min-height: 1.5rem; margin: .5rem 0; }
  #answer { white-space: pre-wrap; padding: 1rem; border-left: 4px solid #1f5fbf; background: #f1f5fb;
            min-height: 2rem; }
  #citations li { margin: .4rem 0; }
  .source { font-weight: 600; }
  .snippet { color: #5a6570; font-size: .9rem; display: block; }
  .error { color: #b00020; }
</style>
</head>
<body data-auth="__AUTH__">
<h1>Ask the knowledge base</h1>
<form id="ask-form">
  <input id="question" name="q" type="text" autocomplete="off" placeholder="Your question"
         maxlength="__MAX_CHARS__" required>
  <button id="ask" type="submit">Ask</button>
</form>
<div id="controls">
  <label>passages <input id="k" type="number" min="1" max="100" value="5"></label>
  <label>filter <input id="filters" type="text" placeholder="lang=en, source=a.md"></label>
  <label><input id="hybrid" type="checkbox"> hybrid (BM25 + kNN)</label>
  <label id="api-key-row" hidden>API key <input id="api-key" type="password" autocomplete="off"></label>
</div>
<p id="status" role="status"></p>
<div id="answer" aria-live="polite"></div>
<h2>Sources</h2>
<ol id="citations"></ol>
<script>
"use strict";
const form = document.getElementById("ask-form");
const input = document.getElementById("question");
const button = document.getElementById("ask");
const statusLine = document.getElementById("status");
const answer = document.getElementById("answer");
const citations = document.getElementById("citations");
const kInput = document.getElementById("k");
const filtersInput = document.getElementById("filters");
const hybridInput = document.getElementById("hybrid");
const keyRow = document.getElementById("api-key-row");
const keyInput = document.getElementById("api-key");

if (document.body.dataset.auth === "required") {
  keyRow.hidden = false;
  keyInput.value = sessionStorage.getItem("rag-api-key") || "";
}
keyInput.addEventListener("change", () => sessionStorage.setItem("rag-api-key", keyInput.value));

function parseFilters(text) {
  const out = {};
  for (const part of text.split(",")) {
    const item = part.trim();
    if (!item) continue;
    const cut = item.indexOf("=");
    if (cut <= 0) throw new Error("a filter must look like key=value: " + item);
    const key = item.slice(0, cut).trim();
    (out[key] = out[key] || []).push(item.slice(cut + 1).trim());
  }
  return out;
}

function showCitations(list) {
  citations.replaceChildren();
  for (const c of list) {
    const item = document.createElement("li");
    item.value = c.n;
    item.className = "citation";
    const source = document.createElement("span");
    source.className = "source";
    source.textContent = c.source + " (chunk " + c.chunk_index + ")";
    const snippet = document.createElement("span");
    snippet.className = "snippet";
    snippet.textContent = c.text.length > 240 ? c.text.slice(0, 240) + "..." : c.text;
    item.append(source, snippet);
    citations.append(item);
  }
}

function handle(event, data) {
  if (event === "token") {
    answer.textContent += data.text;
  } else if (event === "answer") {
    answer.textContent = data.answer;
    showCitations(data.citations);
    let line = data.citations.length + " cited of " + data.passages + " passages";
    if (data.usage) line += ", " + data.usage.total_tokens + " tokens";
    statusLine.textContent = line;
  } else if (event === "error") {
    statusLine.textContent = data.message;
    statusLine.className = "error";
  }
}

async function ask(question) {
  button.disabled = true;
  answer.textContent = "";
  citations.replaceChildren();
  statusLine.className = "";
  statusLine.textContent = "Searching...";
  try {
    const request = {question: question, filters: parseFilters(filtersInput.value),
                     hybrid: hybridInput.checked};
    const k = parseInt(kInput.value, 10);
    if (k >= 1) request.k = k;
    const headers = {"content-type": "application/json", "accept": "text/event-stream"};
    if (keyInput.value) headers["authorization"] = "Bearer " + keyInput.value;
    const response = await fetch("ask/stream",
                                 {method: "POST", headers: headers, body: JSON.stringify(request)});
    if (!response.ok) {
      const body = await response.json().catch(() => ({error: {message: response.statusText}}));
      if (response.status === 401) { keyRow.hidden = false; keyInput.focus(); }
      throw new Error(body.error.message);
    }
    statusLine.textContent = "Answering...";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message", data = "";
        for (const line of block.split("\\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (data) handle(event, JSON.parse(data));
      }
    }
  } catch (err) {
    statusLine.textContent = "Error: " + err.message;
    statusLine.className = "error";
  } finally {
    button.disabled = false;
  }
}

form.addEventListener("submit", (e) => { e.preventDefault(); ask(input.value); });
const initial = new URLSearchParams(location.search).get("q");
if (initial) { input.value = initial; ask(initial); }
</script>
</body>
</html>
"""


def render_page(auth: bool = False, max_chars: int = 2000) -> str:
    """The page; ``auth`` shows the API-key field from the start."""
    return _PAGE.replace("__AUTH__", "required" if auth else "none").replace("__MAX_CHARS__", str(max_chars))


PAGE = render_page()
