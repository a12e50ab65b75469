// pocketmq's web console: plain JavaScript over the JSON admin API (/api/...), no build step.
// Everything shown is put into the DOM as text (textContent through h()), never as HTML: message bodies,
// keys and properties are whatever a client sent.
"use strict";

// ---- DOM and formatting helpers -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "value") el.value = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function pad(n) { return String(n).padStart(2, "0"); }

function time(ms) {
  if (!ms || ms <= 0) return "–";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function preview(text, max = 80) {
  const flat = text.replace(/\s+/g, " ");
  return flat.length > max ? flat.slice(0, max) + "…" : flat;
}

function table(headers, rows, attrs) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map(([label, cls]) => h("th", { class: cls }, label)))),
    h("tbody", {}, rows));
}

function stat(label, value, id) {
  return h("div", { class: "stat", "data-stat": id }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, value));
}

function field(label, input) { return h("label", {}, label, input); }

function formValues(form) { return Object.fromEntries(new FormData(form).entries()); }

// ---- API and notices -------------------------------------------------------------------------------------

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

const get = (path, params) => call("GET", params ? `${path}?${new URLSearchParams(params)}` : path);
const post = (path, body) => call("POST", path, body);

function notice(text, kind) {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

// Runs an action from a form or button: shows its error, or its success text, and then re-renders the page.
async function act(work, success) {
  try {
    const result = await work();
    notice(typeof success === "function" ? success(result) : success, "ok");
    await render();
    return result;
  } catch (err) {
    notice(err.message, "error");
    return undefined;
  }
}

let topicNames = [];

async function loadTopicNames() {
  topicNames = (await get("/api/topics")).filter(t => !t.system).map(t => t.topic);
  return topicNames;
}

function topicSelect(name, selected, all) {
  const names = all || topicNames;
  return h("select", { name, required: true },
    names.map(t => h("option", { value: t, selected: t === selected }, t)));
}

// ---- Pages -----------------------------------------------------------------------------------------------

const pages = {};

function invariantsSection(inv) {
  const names = Object.keys(inv.counts).sort();
  return [
    h("h2", {}, "Invariants"),
    h("p", { class: "muted", id: "invariants-summary" }, inv.enabled
      ? `${inv.total} violation${inv.total === 1 ? "" : "s"} since start (docs/testing.md, "Invariant checker")`
      : "The invariant checker is off (POCKETMQ_INVARIANTS=off)."),
    table([["Invariant"], ["Violations", "num"]],
      names.map(n => h("tr", {}, h("td", {}, n), h("td", { class: "num" }, inv.counts[n]))), { id: "invariant-counts" }),
    inv.recent.length ? table([["Time"], ["Invariant"], ["Evidence"]],
      inv.recent.map(v => h("tr", {}, h("td", {}, time(v.timeMs)), h("td", {}, v.invariant), h("td", {}, v.message))),
      { id: "invariant-violations" }) : null,
  ];
}

pages.broker = async () => {
  const [b, inv] = await Promise.all([get("/api/broker"), get("/api/invariants")]);
  document.getElementById("where").textContent = `${b.cluster} / ${b.brokerName} @ ${b.address}`;
  return [
    h("h2", {}, "Cluster and broker"),
    h("div", { class: "grid" },
      stat("Cluster", b.cluster, "cluster"), stat("Broker", b.brokerName, "broker"),
      stat("Address", b.address, "address"), stat("Name servers", (b.namesrvAddr || []).join(", ") || "–", "namesrv"),
      stat("Put TPS (10 s, 1 min, 10 min)", b.putTps, "putTps"), stat("Get TPS", b.getTps, "getTps"),
      stat("Messages put today", b.msgPutTotalTodayNow, "putToday"),
      stat("Messages got today", b.msgGetTotalTodayNow, "getToday"),
      stat("Put yesterday", b.msgPutTotalYesterdayMorning ?? "–", "putYesterday"),
      stat("Store size", bytes(b.storeBytes), "storeBytes"),
      stat("Oldest message", time(b.earliestMessageTimeStamp), "earliest"),
      stat("Topics", b.topicCount, "topics"), stat("Open connections", b.connectionCount, "connections"),
      stat("Delayed waiting", b.scheduledMessages, "scheduled"),
      stat("Half messages pending", b.pendingHalfMessages, "half")),
    h("p", { class: "muted" }, "Data directory: ", h("code", {}, b.dataDir),
      " · Prometheus metrics at ", h("a", { href: "/metrics" }, "/metrics")),
    invariantsSection(inv),
  ];
};

pages.topics = async () => {
  const topics = await get("/api/topics");
  const create = h("form", { class: "inline", id: "create-topic" },
    field("Topic", h("input", { name: "topic", required: true, pattern: "[%|a-zA-Z0-9_\\-]+", maxlength: 127 })),
    field("Read queues", h("input", { name: "readQueueNums", type: "number", min: 1, max: 1024, value: 4 })),
    field("Write queues", h("input", { name: "writeQueueNums", type: "number", min: 1, max: 1024, value: 4 })),
    field("Permission", h("select", { name: "perm" },
      h("option", { value: 6 }, "read and write"), h("option", { value: 4 }, "read only"),
      h("option", { value: 2 }, "write only"))),
    field("Message type", h("select", { name: "messageType" },
      ["", "NORMAL", "FIFO", "DELAY", "TRANSACTION", "MIXED"].map(t => h("option", { value: t }, t || "(any)")))),
    h("button", { type: "submit" }, "Create or update"));
  create.addEventListener("submit", event => {
    event.preventDefault();
    const v = formValues(create);
    act(() => post("/api/topics/create", {
      topic: v.topic, readQueueNums: Number(v.readQueueNums), writeQueueNums: Number(v.writeQueueNums),
      perm: Number(v.perm), messageType: v.messageType,
    }), `Topic ${v.topic} saved`);
  });
  const showSystem = h("input", { type: "checkbox", id: "show-system" });
  const rows = [];
  for (const t of topics) {
    const queues = h("tr", { class: "sub", hidden: true, "data-queues-of": t.topic },
      h("td", { colspan: 8 }, table([["Queue", "num"], ["Min offset", "num"], ["Max offset", "num"], ["Messages", "num"]],
        t.queues.map(q => h("tr", {}, h("td", { class: "num" }, q.queueId), h("td", { class: "num" }, q.minOffset),
          h("td", { class: "num" }, q.maxOffset), h("td", { class: "num" }, q.maxOffset - q.minOffset))))));
    const remove = t.system ? null : h("button", {
      class: "small danger", "data-delete": t.topic,
      onclick: () => {
        if (confirm(`Delete topic ${t.topic} with its messages and offsets?`)) {
          act(() => post("/api/topics/delete", { topic: t.topic }), `Topic ${t.topic} deleted`);
        }
      },
    }, "Delete");
    rows.push(h("tr", { "data-topic": t.topic, class: t.system ? "system" : null, hidden: t.system },
      h("td", {}, t.topic, t.system ? h("span", { class: "pill" }, "system") : null),
      h("td", {}, t.attributes["message.type"] || "any"),
      h("td", { class: "num" }, `${t.readQueueNums} / ${t.writeQueueNums}`),
      h("td", {}, ["", "", "W", "", "R", "", "RW", ""][t.perm & 6] || "–"),
      h("td", { class: "num", "data-col": "messages" }, t.messages),
      h("td", { class: "num" }, t.putTps.toFixed(2)),
      h("td", {}, h("button", { class: "small secondary", onclick: () => { queues.hidden = !queues.hidden; } }, "Queues"),
        " ", h("a", { href: `#messages?topic=${encodeURIComponent(t.topic)}` }, "Browse")),
      h("td", {}, remove)), queues);
  }
  showSystem.addEventListener("change", () => {
    for (const row of document.querySelectorAll("tr.system")) row.hidden = !showSystem.checked;
  });
  return [
    h("h2", {}, "Create or update a topic"), h("div", { class: "card" }, create),
    h("h2", {}, "Topics ", h("label", { class: "check" }, showSystem, "show system, retry and dead-letter topics")),
    table([["Topic"], ["Type"], ["Queues r / w", "num"], ["Perm"], ["Messages", "num"], ["Put TPS", "num"], [""], [""]],
      rows, { id: "topics" }),
  ];
};

pages.groups = async () => {
  const groups = await get("/api/groups");
  if (!groups.length) return [h("h2", {}, "Groups"), h("p", { class: "muted" }, "No consumer group is known yet.")];
  return [h("h2", {}, "Consumer groups"), groups.map(g => {
    const topics = g.topics.map(t => t.topic);
    const reset = h("form", { class: "inline", "data-reset": g.group },
      field("Topic", topicSelect("topic", topics[0], topics)),
      field("Time", h("input", { name: "time", type: "datetime-local", step: 1 })),
      h("button", { type: "submit", name: "to-time" }, "Reset to time"),
      h("button", { type: "button", class: "secondary", "data-skip": g.group, onclick: () => {
        const topic = formValues(reset).topic;
        act(() => post("/api/groups/reset-offset", { group: g.group, topic, skip: true }),
          r => `${g.group} skipped to the end of ${topic}; ${r.consumersTold} online consumer(s) told`);
      } }, "Skip to end"));
    reset.addEventListener("submit", event => {
      event.preventDefault();
      const v = formValues(reset);
      const timestamp = v.time ? new Date(v.time).getTime() : NaN;
      if (Number.isNaN(timestamp)) { notice("Pick a time to reset to", "error"); return; }
      act(() => post("/api/groups/reset-offset", { group: g.group, topic: v.topic, timestamp }),
        r => `${g.group} reset on ${v.topic}; ${r.consumersTold} online consumer(s) told`);
    });
    return h("div", { class: "card", "data-group": g.group },
      h("h3", {}, g.group, " ", g.orderly ? h("span", { class: "pill" }, "orderly") : null,
        g.consumeEnable ? null : h("span", { class: "pill" }, "consume disabled")),
      h("p", {}, h("span", { class: "muted" }, "Members: "),
        g.clients.length ? g.clients.map(c => h("span", { class: "pill mono" }, c)) : h("span", { class: "muted" }, "none online"),
        h("span", { class: "muted" }, ` · retry max ${g.retryMaxTimes}`)),
      g.topics.map(t => h("div", {},
        h("p", {}, h("strong", {}, t.topic), h("span", { class: "muted" }, ` · lag ${t.lag} · get TPS ${t.getTps.toFixed(2)}`)),
        table([["Queue", "num"], ["Broker offset", "num"], ["Consumer offset", "num"], ["Lag", "num"]],
          t.queues.map(q => h("tr", { "data-queue": `${t.topic}:${q.queueId}` },
            h("td", { class: "num" }, q.queueId), h("td", { class: "num" }, q.brokerOffset),
            h("td", { class: "num" }, q.consumerOffset),
            h("td", { class: q.lag ? "num lag-bad" : "num", "data-col": "lag" }, q.lag)))))),
      topics.length ? h("div", { style: null }, h("h3", {}, "Reset offsets"), reset) : null);
  })];
};

// The last result list of the Messages page, and the detail view of one message.
let lastFound = null;

function messageRows(messages) {
  return table([["Queue", "num"], ["Offset", "num"], ["Message id"], ["Tags"], ["Keys"], ["Body"], ["Stored"], [""]],
    messages.map(m => h("tr", { "data-msgid": m.msgId },
      h("td", { class: "num" }, m.queueId), h("td", { class: "num" }, m.queueOffset),
      h("td", { class: "mono" }, m.msgId), h("td", {}, m.tags),
      h("td", {}, (m.keys || []).map(k => h("span", { class: "pill" }, k))),
      h("td", { class: "mono", "data-col": "body" }, preview(m.bodyText || "")),
      h("td", {}, time(m.storeTimestamp)),
      h("td", {}, h("button", { class: "small secondary", onclick: () => showDetail(m) }, "View")))),
    { id: "found" });
}

function showDetail(m) {
  const box = document.getElementById("detail");
  const resend = h("form", { class: "inline", id: "resend" },
    field("Consumer group (empty: resend to the topic)", h("input", { name: "group", maxlength: 255 })),
    h("button", { type: "submit" }, "Resend"));
  resend.addEventListener("submit", event => {
    event.preventDefault();
    const group = formValues(resend).group;
    act(() => post("/api/messages/resend", { msgId: m.msgId, group }),
      r => `Resent as ${r.msgId} to ${r.topic} (queue ${r.queueId}, offset ${r.queueOffset})`);
  });
  const facts = [
    ["Message id", m.msgId], ["UNIQ_KEY", m.uniqKey], ["Topic", m.topic], ["Queue / offset", `${m.queueId} / ${m.queueOffset}`],
    ["Tags", m.tags], ["Keys", (m.keys || []).join(" ")], ["Born", `${time(m.bornTimestamp)} from ${m.bornHost}`],
    ["Stored", `${time(m.storeTimestamp)} at ${m.storeHost}`], ["Reconsume times", m.reconsumeTimes],
    ["Problem", m.error || "none"],
    ["Body size", `${m.bodySize} bytes${m.bodyTruncated ? " (shown cut)" : ""}${m.bodyNote ? ` (${m.bodyNote})` : ""}`],
  ];
  box.replaceChildren(h("div", { class: "card", id: "message-detail" },
    h("h3", {}, "Message ", h("span", { class: "mono" }, m.msgId)),
    table([["Field"], ["Value"]], facts.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, v)))),
    h("h3", {}, "Properties"),
    table([["Name"], ["Value"]], Object.entries(m.properties || {}).map(([k, v]) =>
      h("tr", { "data-property": k }, h("td", { class: "mono" }, k), h("td", { class: "mono" }, v))), { id: "properties" }),
    h("h3", {}, "Body (UTF-8)"), h("pre", { id: "body-text" }, m.bodyText),
    h("h3", {}, "Body (base64)"), h("pre", { id: "body-base64" }, m.bodyBase64),
    h("h3", {}, "Resend"), resend));
  box.scrollIntoView();
}

pages.messages = async params => {
  await loadTopicNames();
  const browse = h("form", { class: "inline", id: "browse" },
    field("Topic", topicSelect("topic", params.get("topic"))),
    field("Queue", h("input", { name: "queueId", type: "number", min: 0, value: params.get("queueId") || 0 })),
    field("From offset", h("input", { name: "offset", type: "number", min: 0, value: params.get("offset") || 0 })),
    field("Count", h("input", { name: "count", type: "number", min: 1, max: 32, value: 16 })),
    h("button", { type: "submit" }, "Browse"));
  const byKey = h("form", { class: "inline", id: "by-key" },
    field("Topic", topicSelect("topic", params.get("topic"))),
    field("Key", h("input", { name: "key", required: true })), h("button", { type: "submit" }, "Find by key"));
  const byId = h("form", { class: "inline", id: "by-id" },
    field("Message id or UNIQ_KEY", h("input", { name: "id", required: true, size: 36 })),
    h("button", { type: "submit" }, "Find by id"));
  const results = h("div", { id: "results" });
  const detail = h("div", { id: "detail" });
  const find = async (path, query, what) => {
    try {
      const found = await get(path, query);
      lastFound = { what, messages: found.messages };
      results.replaceChildren(h("p", { class: "muted" }, `${what}: ${found.messages.length} message(s)`,
        found.maxOffset !== undefined ? ` (queue offsets ${found.minOffset}..${found.maxOffset - 1})` : ""),
        messageRows(found.messages));
      detail.replaceChildren();
      notice("", "");
    } catch (err) { notice(err.message, "error"); }
  };
  browse.addEventListener("submit", e => {
    e.preventDefault();
    const v = formValues(browse);
    find("/api/messages", v, `${v.topic} queue ${v.queueId} from offset ${v.offset}`);
  });
  byKey.addEventListener("submit", e => {
    e.preventDefault();
    const v = formValues(byKey);
    find("/api/messages/by-key", v, `key ${v.key} in ${v.topic}`);
  });
  byId.addEventListener("submit", e => {
    e.preventDefault();
    const v = formValues(byId);
    find("/api/messages/by-id", v, `id ${v.id}`);
  });
  if (params.get("topic") && params.get("browse")) setTimeout(() => browse.requestSubmit(), 0);  // once the page is in the document
  else if (lastFound) results.append(h("p", { class: "muted" }, `${lastFound.what}:`), messageRows(lastFound.messages));
  return [
    h("h2", {}, "Find messages"),
    h("div", { class: "card" }, h("h3", {}, "Browse a queue"), browse, h("h3", {}, "By key"), byKey,
      h("h3", {}, "By message id"), byId),
    results, detail,
  ];
};

pages.pending = async () => {
  const p = await get("/api/pending");
  return [
    h("h2", {}, `Delayed messages waiting (${p.delayed.total})`),
    table([["Due"], ["Level", "num"], ["Topic"], ["Queue", "num"], ["Message id"], ["Keys"], ["Body"]],
      p.delayed.messages.map(m => h("tr", { "data-msgid": m.msgId },
        h("td", {}, time(m.dueTimestamp)), h("td", { class: "num" }, m.delayLevel ?? "timer"),
        h("td", {}, m.realTopic), h("td", { class: "num" }, m.realQueueId), h("td", { class: "mono" }, m.msgId),
        h("td", {}, (m.keys || []).join(" ")), h("td", { class: "mono" }, preview(m.bodyText || "")))), { id: "delayed" }),
    h("h2", {}, `Transactional half messages pending (${p.half.total})`),
    table([["Created"], ["Producer group"], ["Transaction id"], ["Topic"], ["Checks", "num"], ["Next check"], ["Body"]],
      p.half.messages.map(m => h("tr", { "data-msgid": m.msgId },
        h("td", {}, time(m.createdTimestamp)), h("td", {}, m.producerGroup), h("td", { class: "mono" }, m.transactionId),
        h("td", {}, m.realTopic), h("td", { class: "num" }, m.checkTimes), h("td", {}, time(m.nextCheckTimestamp)),
        h("td", { class: "mono" }, preview(m.bodyText || "")))), { id: "half" }),
  ];
};

pages.connections = async () => {
  const c = await get("/api/connections");
  return [
    h("h2", {}, `Remoting clients (${c.openConnections} open connections)`),
    table([["Role"], ["Group"], ["Client id"], ["Language"], ["Version", "num"], ["Address"]],
      c.remoting.map(r => h("tr", { "data-client": r.clientId },
        h("td", {}, r.role), h("td", {}, r.group), h("td", { class: "mono" }, r.clientId),
        h("td", { "data-col": "language" }, r.language), h("td", { class: "num" }, r.version),
        h("td", { class: "mono" }, r.address))), { id: "remoting" }),
    h("h2", {}, "gRPC (5.x) clients"),
    c.grpc.length
      ? table([["Client id"], ["Type"], ["Connected"]], c.grpc.map(g => h("tr", {},
        h("td", { class: "mono" }, g.clientId), h("td", {}, g.clientType), h("td", {}, g.connected ? "yes" : "no"))))
      : h("p", { class: "muted" }, "None."),
  ];
};

pages.faults = async () => {
  const [f, trace] = await Promise.all([get("/api/faults"), get("/api/trace")]);
  const rule = r => Object.entries(r).filter(([k]) => !["id", "action", "matched", "injected", "exhausted"].includes(k))
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join(" ");
  const remove = id => act(() => post("/api/faults/remove", { id }), `Removed fault rule ${id}`);
  return [
    h("h2", {}, "Fault rules"),
    h("p", { class: "muted" }, "Added with pocketmq fault add or POST /api/faults (docs/testing.md)."),
    f.rules.length
      ? table([["Rule", "num"], ["Action"], ["Matches and does"], ["Matched", "num"], ["Injected", "num"], [""]],
        f.rules.map(r => h("tr", { "data-rule": r.id },
          h("td", { class: "num" }, r.id), h("td", {}, r.action + (r.method ? " (gRPC)" : "") + (r.exhausted ? " (exhausted)" : "")),
          h("td", { class: "mono" }, rule(r)), h("td", { class: "num", "data-col": "matched" }, r.matched),
          h("td", { class: "num", "data-col": "injected" }, r.injected),
          h("td", {}, h("button", { type: "button", onclick: () => remove(r.id) }, "Remove")))), { id: "faults" })
      : h("p", { class: "muted", id: "no-faults" }, "None: requests are served as they come."),
    f.rules.length ? h("button", { type: "button", id: "clear-faults",
      onclick: () => act(() => post("/api/faults/clear", {}), r => `Removed ${r.removed} rule(s)`) }, "Remove all") : "",
    h("h2", {}, "Protocol trace"),
    h("p", { id: "trace" }, !trace.on ? "Off (pocketmq trace on FILE, or Start on the Trace page)."
      : trace.file ? `On: ${trace.file}, ${trace.written} line(s) written, ${trace.dropped} dropped${trace.failed ? ", failed: " + trace.failed : ""}.`
        : "On, in memory only: see the Trace page."),
  ];
};

pages.send = async () => {
  const [names, broker] = await Promise.all([loadTopicNames(), get("/api/broker")]);
  const levels = broker.delayLevels || [];
  const form = h("form", { class: "stack card", id: "send" },
    field("Topic (an existing one, or a new name when auto-creation is on)",
      h("input", { name: "topic", required: true, list: "topic-names", maxlength: 127 })),
    h("datalist", { id: "topic-names" }, names.map(t => h("option", { value: t }))),
    field("Tag", h("input", { name: "tags" })),
    field("Keys (space-separated)", h("input", { name: "keys" })),
    field("Properties (one name=value a line)", h("textarea", { name: "properties", rows: 3 })),
    field("Delay", h("select", { name: "delayLevel" }, h("option", { value: 0 }, "none"),
      levels.map((ms, i) => h("option", { value: i + 1 }, `level ${i + 1}: ${ms >= 60000 ? ms / 60000 + " min" : ms / 1000 + " s"}`)))),
    field("Body", h("textarea", { name: "body", required: true, rows: 6 })),
    h("div", {}, h("button", { type: "submit" }, "Send")));
  const result = h("div", { id: "sent" });
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const v = formValues(form);
    const properties = {};
    for (const line of v.properties.split("\n")) {
      const at = line.indexOf("=");
      if (line.trim() && at > 0) properties[line.slice(0, at).trim()] = line.slice(at + 1);
    }
    try {
      const sent = await post("/api/messages/send", {
        topic: v.topic, tags: v.tags, keys: v.keys, properties, delayLevel: Number(v.delayLevel), body: v.body,
      });
      notice(`Sent ${sent.msgId}`, "ok");
      const browse = `#messages?topic=${encodeURIComponent(sent.topic)}&queueId=${sent.queueId}` +
        `&offset=${sent.queueOffset}&browse=1`;
      result.replaceChildren(h("div", { class: "card" }, h("p", {}, "Stored as ", h("code", {}, sent.msgId),
        ` in ${sent.topic}, queue ${sent.queueId}, offset ${sent.queueOffset}. `,
        Number(v.delayLevel) ? "It is delayed: see Pending. " : "", h("a", { href: browse, id: "browse-sent" }, "Browse it"))));
    } catch (err) { notice(err.message, "error"); }
  });
  return [h("h2", {}, "Send a test message"), form, result];
};

// ---- The live protocol trace ------------------------------------------------------------------------------

const TRACE_ROWS = 500;  // rows kept on the page (and asked for at once), newest first
const TRACE_POLL_MS = 1000;
let traceView = null;  // the Trace page's state while it is shown; a poll of an older one stops

function traceCodeName(e) {
  if (e.proto === "grpc") return e.method;
  if (e.dir === "response") return e.requestName || e.request;
  return e.name || e.code;
}

function traceAnswer(e) {
  if (e.proto === "grpc") {  // the gRPC status, then the v2 status the answer carried when it is not OK
    const status = e.statusName ?? e.status;
    const answered = e.name && e.name !== "OK" ? ` / ${e.name}` : "";
    return `${status}${answered}${e.fault ? ` [${e.fault}]` : ""}`;
  }
  if (e.dir === "response") return e.code === null ? "NO_ANSWER" : `${e.name || "?"} (${e.code})`;
  return e.oneway ? "oneway" : "";
}

function traceFailed(e) {
  if (e.proto === "grpc") return e.status !== 0 || (e.name !== undefined && e.name !== null && e.name !== "OK");
  return e.dir === "response" && e.code !== 0;
}

function traceValue(v) { return v !== null && typeof v === "object" ? JSON.stringify(v) : String(v); }

function traceDetail(e) {
  const facts = [["seq", e.seq], ["time", e.time], ["server", e.server], ["peer", e.peer], ["client", e.client],
    ["code", e.code], ["request", e.request], ["oneway", e.oneway], ["stream", e.stream], ["status", e.status],
    ["message", e.message], ["remark", e.remark], ["fault", e.fault]].filter(([, v]) => v !== undefined && v !== null && v !== "");
  const fields = Object.entries(e.fields || {});
  return h("tr", { class: "sub trace-detail", "data-detail-of": e.seq }, h("td", { colspan: 13 },
    h("div", { class: "row" },
      h("div", {}, h("h3", {}, "Frame"), table([["Field"], ["Value"]],
        facts.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, traceValue(v)))))),
      h("div", {}, h("h3", {}, e.proto === "grpc" ? "Request summary" : "Header fields"),
        fields.length
          ? table([["Name"], ["Value"]], fields.map(([k, v]) => h("tr", { "data-field": k },
            h("td", { class: "mono" }, k), h("td", { class: "mono" }, traceValue(v)))), { class: "trace-fields" })
          : h("p", { class: "muted" }, "None.")))));
}

function traceRow(e) {
  const cell = (col, value, cls) => h("td", { "data-col": col, class: cls }, value ?? "");
  const row = h("tr", { class: "trace-row", "data-seq": e.seq, "data-dir": e.dir, "data-name": traceCodeName(e) },
    cell("time", String(e.time || "").slice(11, 26), "mono"), cell("proto", e.proto), cell("dir", e.dir),
    cell("conn", e.conn, "mono"), h("td", { "data-col": "client", class: "mono clip", title: e.client }, e.client || "–"),
    cell("lang", [e.lang, e.ver].filter(x => x !== undefined && x !== null).join(" ")),
    cell("code", traceCodeName(e)), cell("topic", e.topic), cell("group", e.group),
    cell("opaque", e.opaque, "num"), cell("answer", traceAnswer(e), traceFailed(e) ? "lag-bad" : null),
    cell("latency", e.latencyMs === undefined ? "" : e.latencyMs.toFixed(2), "num"), cell("body", e.body, "num"));
  row.addEventListener("click", () => {
    if (row.traceDetail) { row.traceDetail.remove(); row.traceDetail = null; return; }
    row.traceDetail = traceDetail(e);
    row.after(row.traceDetail);
  });
  return row;
}

function addTraceRows(view, entries) {
  if (!entries.length) return;
  const fresh = document.createDocumentFragment();
  for (const e of entries.slice(-TRACE_ROWS).reverse()) {
    const row = traceRow(e);
    fresh.append(row);
    view.rows.push(row);
  }
  view.tbody.prepend(fresh);
  while (view.rows.length > TRACE_ROWS) {
    const oldest = view.rows.shift();
    if (oldest.traceDetail) oldest.traceDetail.remove();
    oldest.remove();
  }
}

function showTraceSummary(view) {
  const missed = view.missed ? ` · ${view.missed} entries missed (paused, filtered out of the limit or older ` +
    "than the broker keeps)" : "";
  view.summary.textContent = `${view.rows.length} row(s), newest first (at most ${TRACE_ROWS}); ` +
    `click a row for its header fields${view.paused ? " · paused" : ""}${missed}`;
}

async function refreshTraceStatus(view) {
  const t = await get("/api/trace");
  if (traceView !== view) return;
  view.on = t.on;
  view.status.textContent = t.on
    ? `On${t.file ? `, also written to ${t.file}` : ", in memory only"}; the broker keeps the last ` +
      `${t.live.capacity} entries.`
    : `Off: nothing is traced. The broker still holds ${t.live.held} earlier entries.`;
  view.start.disabled = t.on;
  view.stop.disabled = !t.on;
}

async function fetchTrace(view) {
  if (view.busy) return;  // the next poll catches up
  view.busy = true;
  const generation = view.generation;
  try {
    const params = { after: view.after, limit: TRACE_ROWS };
    if (view.q) params.q = view.q;
    const r = await get("/api/trace/recent", params);
    if (traceView !== view || generation !== view.generation) return;
    if (r.seq < view.after) { view.after = 0; return; }  // a restarted broker numbers from 1 again
    if (view.after) view.missed += r.missed + r.more;
    view.after = r.seq;
    addTraceRows(view, r.entries);
    showTraceSummary(view);
    if (r.on !== view.on) await refreshTraceStatus(view);
  } catch (err) {
    view.summary.textContent = `Cannot read the trace: ${err.message}`;
  } finally {
    view.busy = false;
  }
}

async function pollTrace(view) {
  if (traceView !== view || !view.tbody.isConnected) return;  // the page was left or built again
  if (!view.paused && document.visibilityState === "visible") await fetchTrace(view);
  if (traceView === view && view.tbody.isConnected) view.timer = setTimeout(() => pollTrace(view), TRACE_POLL_MS);
}

function restartTrace(view) {
  view.generation++;
  view.after = 0;
  view.missed = 0;
  for (const row of view.rows) { if (row.traceDetail) row.traceDetail.remove(); row.remove(); }
  view.rows = [];
  showTraceSummary(view);
}

pages.trace = async () => {
  if (traceView) clearTimeout(traceView.timer);
  const view = {
    after: 0, missed: 0, q: "", paused: false, busy: false, generation: 0, on: false, rows: [], timer: null,
    tbody: h("tbody", {}), summary: h("p", { class: "muted", id: "trace-summary" }),
    status: h("p", { id: "trace-status" }),
  };
  traceView = view;
  const change = async (path, body, success) => {
    try {
      await post(path, body);
      notice(success, "ok");
      await refreshTraceStatus(view);
      await fetchTrace(view);
    } catch (err) { notice(err.message, "error"); }
  };
  view.start = h("button", { type: "button", id: "trace-start",
    onclick: () => change("/api/trace/on", { live: true }, "Live trace started") }, "Start");
  view.stop = h("button", { type: "button", class: "danger", id: "trace-stop",
    onclick: () => change("/api/trace/off", {}, "Trace stopped") }, "Stop");
  const pause = h("button", { type: "button", class: "secondary", id: "trace-pause", onclick: () => {
    view.paused = !view.paused;
    pause.textContent = view.paused ? "Resume" : "Pause";
    showTraceSummary(view);
    if (!view.paused) fetchTrace(view);
  } }, "Pause");
  const clear = h("button", { type: "button", class: "secondary", id: "trace-clear", onclick: () => {
    const after = view.after;
    restartTrace(view);
    view.after = after;  // only what comes from now on
  } }, "Clear");
  let typing = null;
  const filter = h("input", { type: "search", id: "trace-filter", maxlength: 200, size: 32,
    placeholder: "name, method, topic, group, client…" });
  filter.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { view.q = filter.value.trim(); restartTrace(view); fetchTrace(view); }, 300);
  });
  const rows = table([["Time (UTC)"], ["Proto"], ["Dir"], ["Conn"], ["Client"], ["Lang / ver"], ["Code / method"],
    ["Topic"], ["Group"], ["Opaque", "num"], ["Response"], ["Latency ms", "num"], ["Body", "num"]], [],
  { id: "trace-rows", class: "trace" });
  rows.querySelector("tbody").replaceWith(view.tbody);
  await refreshTraceStatus(view);
  await fetchTrace(view);
  view.timer = setTimeout(() => pollTrace(view), TRACE_POLL_MS);
  return [
    h("h2", {}, "Live protocol trace"),
    h("p", { class: "muted" }, "Every remoting request and response and every gRPC call, as the broker sees them " +
      "(docs/testing.md, \"Protocol trace\"). Tracing costs the broker time per request: stop it when done."),
    view.status,
    h("div", { class: "toolbar" }, view.start, view.stop, pause, clear, field("Filter", filter)),
    view.summary,
    h("div", { class: "scroll" }, rows),
  ];
};

// ---- Navigation ------------------------------------------------------------------------------------------

async function render() {
  const [name, query] = (location.hash.slice(1) || "broker").split("?");
  const page = pages[name] ? name : "broker";
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.page === page);
  const main = document.getElementById("page");
  main.dataset.page = "loading";
  try {
    const content = await pages[page](new URLSearchParams(query || ""));
    main.replaceChildren(...[content].flat(Infinity));
    main.dataset.page = page;
  } catch (err) {
    notice(err.message, "error");
  }
}

window.addEventListener("hashchange", () => { notice("", ""); render(); });
document.addEventListener("DOMContentLoaded", () => {
  get("/api/broker").then(b => {
    document.getElementById("where").textContent = `${b.cluster} / ${b.brokerName} @ ${b.address}`;
  }).catch(() => {});
  render();
});
