"""The one web page of ``python -m rag serve``: ask a question, watch the cited answer stream in.

It posts to ``/ask/stream`` and reads the server-sent events (``token``, ``answer``,
``error``) from the response body. Text is inserted with ``textContent`` only, so nothing
from the index or the model is ever parsed as HTML. ``/?q=...`` asks at once.
"""

PAGE = """<!doctype html>
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
  input { flex: 1; font: inherit; padding: .5rem .7rem; border: 1px solid #8894a0; border-radius: 6px; }
  button { font: inherit; padding: .5rem 1rem; border: 0; border-radius: 6px;
           background: #1f5fbf; color: #fff; }
  button:disabled { background: #8894a0; }
  #status { color: #5a6570; min-height: 1.5rem; margin: .5rem 0; }
  #answer { white-space: pre-wrap; padding: 1rem; border-left: 4px solid #1f5fbf; background: #f1f5fb;
            min-height: 2rem; }
  #citations li { margin: .4rem 0; }
  .source { font-weight: 600; }
  .snippet { color: #5a6570; font-size: .9rem; display: block; }
  .error { color: #b00020; }
</style>
</head>
<body>
<h1>Ask the knowledge base</h1>
<form id="ask-form">
  <input id="question" name="q" type="text" autocomplete="off" placeholder="Your question" required>
  <button id="ask" type="submit">Ask</button>
</form>
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
    statusLine.textContent = data.citations.length + " cited of " + data.passages + " passages";
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
    const response = await fetch("ask/stream", {
      method: "POST",
      headers: {"content-type": "application/json", "accept": "text/event-stream"},
      body: JSON.stringify({question: question}),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({error: {message: response.statusText}}));
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
