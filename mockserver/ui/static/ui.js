// The dashboard's only script: every change goes through the documented /_mock/ control API.
"use strict";

const TOKEN = document.querySelector('meta[name="mock-token"]')?.content;

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (TOKEN) h["X-Mock-Token"] = TOKEN;
  return h;
}

async function api(method, path, body) {
  const init = {method, headers: headers(body === undefined ? {} : {"Content-Type": "application/json"})};
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `${method} ${path} answered ${r.status}`);
  return data;
}

function say(text, isError) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = isError ? "error" : "ok";
}

// Fault form: only the fields filled in; numbers as numbers.
function faultBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.value === "") continue;
    if (el.type === "checkbox") { if (el.checked) body[el.name] = true; continue; }
    body[el.name] = el.type === "number" ? Number(el.value) : el.value;
  }
  return body;
}

function formBody(form) {
  if (form.dataset.kind === "fault") return faultBody(form);
  if (form.dataset.kind === "advance") return {advance: Number(form.elements.advance.value)};
  return Object.fromEntries(new FormData(form));
}

async function run(spec, body, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return;
  const cut = spec.indexOf(" ");
  const method = spec.slice(0, cut);
  const path = spec.slice(cut + 1);
  try {
    await api(method, path, body);
    sessionStorage.setItem("flash", `${method} ${path}: done`);
    location.reload();
  } catch (e) {
    say(e.message, true);
  }
}

async function advanceTo(ms) {
  try {
    const clock = await api("GET", "/_mock/clock");
    // a millisecond more: the clock reads whole milliseconds
    const seconds = Math.max(0, (Number(ms) - clock.nowMs) / 1000 + 0.001);
    await run("POST /_mock/clock", {advance: seconds});
  } catch (e) {
    say(e.message, true);
  }
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-api], button[data-advance-to]");
  if (!b) return;
  ev.preventDefault();
  if (b.dataset.advanceTo) return advanceTo(b.dataset.advanceTo);
  run(b.dataset.api, b.dataset.body ? JSON.parse(b.dataset.body) : undefined, b.dataset.confirm);
});

document.addEventListener("submit", (ev) => {
  const f = ev.target.closest("form[data-api]");
  if (!f) return;
  ev.preventDefault();
  run(f.dataset.api, formBody(f));
});

document.addEventListener("DOMContentLoaded", () => {
  const flash = sessionStorage.getItem("flash");
  if (flash) { sessionStorage.removeItem("flash"); say(flash, false); }
  if (document.body.dataset.page === "requests") requestsPage();
});

// --- Requests: the journal as a live table ---------------------------------------------------------------
const MAX_ROWS = 1000;
const SHOW_BYTES = 16384;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function timeOf(ms) {
  return new Date(ms).toISOString().slice(11, 23);
}

function pretty(text) {
  let out = text;
  const t = text.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try { out = JSON.stringify(JSON.parse(t), null, 2); } catch (e) { /* shown as sent */ }
  } else if (t.startsWith("<")) {
    out = t.replace(/>\s*</g, ">\n<");
  }
  if (out.length > SHOW_BYTES) out = out.slice(0, SHOW_BYTES) + `\n… ${out.length - SHOW_BYTES} more characters`;
  return out;
}

function requestsPage() {
  const params = new URLSearchParams(location.search);
  const form = document.getElementById("filters");
  for (const name of ["tenant", "operation", "status", "verdict"]) {
    if (params.get(name)) {
      const f = form.elements[name];
      if (f.tagName === "SELECT" && ![...f.options].some((o) => o.value === params.get(name))) {
        f.append(el("option", {}, params.get(name)));
      }
      f.value = params.get(name);
    }
  }
  const batch = params.get("batch");
  const body = document.querySelector("#journal tbody");
  const live = document.getElementById("live");
  let last = 0;

  function visible(s) {
    const f = form.elements;
    return (!f.tenant.value || s.tenant === f.tenant.value)
      && (!f.operation.value || s.operation === f.operation.value)
      && (!f.status.value || String(s.status).startsWith(f.status.value.trim()))
      && (!f.verdict.value || s.verdict === f.verdict.value)
      && (!batch || s.batchId === batch);
  }

  function refilter() {
    for (const tr of body.rows) tr.hidden = !visible(tr.summary);
    const q = new URLSearchParams();
    for (const name of ["tenant", "operation", "status", "verdict"]) if (form.elements[name].value) q.set(name, form.elements[name].value);
    if (batch) q.set("batch", batch);
    history.replaceState(null, "", "?" + q.toString());
  }
  form.addEventListener("input", refilter);
  form.addEventListener("change", refilter);

  function add(s) {
    const link = el("a", {href: `?seq=${s.seq}`}, `#${s.seq}`);
    link.addEventListener("click", (ev) => { ev.preventDefault(); show(s.seq); });
    const tr = el("tr", {"data-seq": String(s.seq), "data-verdict": s.verdict},
      el("td", {}, link), el("td", {}, timeOf(s.time)), el("td", {}, s.tenant || "–"), el("td", {}, s.operation),
      el("td", {}, el("code", {}, `${s.method} ${s.path}`)), el("td", {}, String(s.status)),
      el("td", {}, el("span", {class: `badge ${s.verdict}`}, s.verdict),
        s.rules.length ? el("span", {class: "rules-broken"}, s.rules.join(", ")) : null,
        s.fault ? el("span", {class: "rules-broken"}, s.fault) : null));
    const tenants = form.elements.tenant;
    if (s.tenant && ![...tenants.options].some((o) => o.value === s.tenant)) tenants.append(el("option", {}, s.tenant));
    tr.summary = s;
    tr.hidden = !visible(s);
    body.prepend(tr);
    while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  }

  async function show(seq) {
    const d = document.getElementById("detail");
    d.hidden = false;
    d.parentElement.classList.add("open");
    d.replaceChildren(el("p", {}, `Loading request #${seq}…`));
    let e;
    try {
      e = await api("GET", `/_mock/journal/${seq}`);
    } catch (err) {
      d.replaceChildren(el("p", {class: "error"}, err.message));
      return;
    }
    const rules = e.violations.map((v) => el("li", {class: v.severity},
      el("p", {}, el("code", {}, v.rule), ` (${v.severity}${v.where ? ", " + v.where : ""}): ${v.detail}`),
      el("p", {}, el("strong", {}, "Adobe documents: "), v.documented),
      el("p", {class: "fix"}, el("strong", {}, "Fix: "), v.fix)));
    const close = el("button", {type: "button"}, "Close");
    close.addEventListener("click", () => { d.hidden = true; d.parentElement.classList.remove("open"); });
    const copy = el("button", {type: "button"}, "Copy");
    copy.addEventListener("click", () => navigator.clipboard?.writeText(e.curl));
    d.replaceChildren(
      el("h2", {}, `Request #${e.seq} `, el("span", {class: `badge ${e.verdict}`}, e.verdict), " ", close),
      el("p", {}, el("code", {}, `${e.method} ${e.url}`), ` → ${e.status}`, e.fault ? ` (fault: ${e.fault})` : ""),
      el("p", {class: "hint"}, `${e.tenant || "no tenant"} · ${e.operation} · ${timeOf(e.time)}`),
      el("h3", {}, e.violations.length ? "Rules broken" : "No rule broken"),
      e.violations.length ? el("ul", {class: "rules"}, ...rules) : null,
      el("h3", {}, "Request body", el("span", {class: "hint"}, ` ${e.bodySize} bytes`)),
      el("pre", {}, e.body ? pretty(e.body) : "(empty)"),
      el("h3", {}, "Response body"),
      el("pre", {}, e.responseBody ? pretty(e.responseBody) : "(empty)"),
      el("h3", {}, "curl ", copy),
      el("pre", {class: "curl"}, e.curl),
      el("details", {}, el("summary", {}, "Headers and parsed"), el("pre", {}, JSON.stringify({headers: e.headers, parsed: e.parsed}, null, 2))));
    d.focus({preventScroll: window.innerWidth >= 1100});
  }

  async function stream() {
    for (;;) {
      try {
        const r = await fetch(`/_mock/journal/stream?after=${last}`, {headers: headers()});
        if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || `stream answered ${r.status}`);
        live.textContent = "Live: new requests appear at the top.";
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buf += dec.decode(value, {stream: true});
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const chunk = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const event = /^event: (.*)$/m.exec(chunk)?.[1];
            const data = /^data: (.*)$/m.exec(chunk)?.[1];
            if (event === "reset") { body.replaceChildren(); last = 0; }
            if (event === "entry" && data) { const s = JSON.parse(data); last = s.seq; add(s); }
          }
        }
      } catch (err) {
        live.textContent = `Not live (${err.message}); retrying…`;
        await new Promise((ok) => setTimeout(ok, 2000));
      }
    }
  }
  stream();
  if (params.get("seq")) show(params.get("seq"));
}
