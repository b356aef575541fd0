/* Northwind Outfitters agent console: plain ES2020, no dependencies. Polls /api/handoffs. */
(() => {
  "use strict";

  const TOKEN_KEY = "agent_token";
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);

  let token = null;
  try { token = sessionStorage.getItem(TOKEN_KEY); } catch (_) { /* storage disabled */ }
  let me = null;
  let current = null;     // the ticket on screen
  let currentId = null;
  let timer = null;
  let agents = [];

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const resp = await fetch(path, {
      method,
      headers: { "Authorization": `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = {};
    try { data = await resp.json(); } catch (_) { /* empty body */ }
    if (!resp.ok) throw new ApiError(resp.status, data.error || `HTTP ${resp.status}`);
    return data;
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props);
    for (const child of children) node.append(child);
    return node;
  }

  const time = (iso) => (iso ? new Date(iso).toLocaleString() : "");
  const money = (cents) => `$${(cents / 100).toFixed(2)}`;

  async function signIn(newToken) {
    token = newToken;
    try {
      me = await api("GET", "/api/handoffs/me");
    } catch (err) {
      token = null;
      showError(err.status === 401 || err.status === 403 ? "That token is not valid." : err.message);
      return;
    }
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* ignore */ }
    showError("");
    $("sign-in").hidden = true;
    $("me").hidden = false;
    $("console").hidden = false;
    $("me-name").textContent = me.admin ? "Signed in as admin" : `Signed in as ${me.name}`;
    $("available-label").hidden = me.admin;
    if (!me.admin) $("available").checked = Boolean(me.agent && me.agent.available);
    await refresh();
    timer = setInterval(refresh, POLL_MS);
  }

  function signOut() {
    clearInterval(timer);
    token = null; me = null; current = null; currentId = null;
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* ignore */ }
    $("sign-in").hidden = false;
    $("me").hidden = true;
    $("console").hidden = true;
    $("ticket").hidden = true;
  }

  async function refresh() {
    try {
      const [list, team] = await Promise.all([
        api("GET", `/api/handoffs?status=${encodeURIComponent($("status").value)}`),
        api("GET", "/api/handoffs/agents"),
      ]);
      agents = team.agents;
      renderQueue(list.tickets);
      if (currentId !== null) await loadTicket(currentId);
    } catch (err) {
      if (err.status === 401 || err.status === 403) { signOut(); showError("Please sign in again."); return; }
      showError(err.message);
    }
  }

  function renderQueue(tickets) {
    const list = $("queue");
    list.replaceChildren(...tickets.map((t) => {
      const button = el("button", { type: "button", className: t.id === currentId ? "selected" : "" },
        `#${t.id} · ${t.status} · P${t.priority} · ${t.topic} · ${t.language}${t.agent_name ? " · " + t.agent_name : ""}`,
        el("span", { className: "line2", textContent: `${t.channel || ""} — ${t.headline || ""}` }));
      button.dataset.id = t.id;
      button.addEventListener("click", () => { currentId = t.id; loadTicket(t.id); });
      return el("li", { className: "ticket-item" }, button);
    }));
    $("queue-empty").hidden = tickets.length > 0;
  }

  async function loadTicket(id) {
    try {
      render(await api("GET", `/api/handoffs/${id}`));
    } catch (err) {
      showError(err.message);
    }
  }

  function render(ticket) {
    current = ticket;
    currentId = ticket.id;
    $("ticket").hidden = false;
    $("ticket-title").textContent = `Ticket #${ticket.id} · ${ticket.customer || "shopper"} · ${ticket.topic}`;
    $("ticket-status").textContent = ticket.status + (ticket.agent_name ? ` (${ticket.agent_name})` : "");
    const mine = ticket.status === "assigned" && (me.admin ? ticket.agent_id === null : ticket.agent_id === me.agent.id);
    $("claim").disabled = ticket.status !== "queued";
    $("resolve").disabled = ticket.status === "resolved";
    $("transfer").disabled = !mine;
    $("send-reply").disabled = !mine;
    $("transfer-to").replaceChildren(
      el("option", { value: "", textContent: "Back to the queue" }),
      ...agents.filter((a) => a.active && a.id !== ticket.agent_id).map((a) =>
        el("option", { value: String(a.id), textContent: `${a.name} (${a.open_tickets}/${a.capacity})` })));
    renderSummary(ticket);
    renderTranscript(ticket.transcript);
    $("events").replaceChildren(...ticket.events.map((e) => el("li", {},
      el("span", { className: "meta", textContent: `${time(e.at)} · ${e.actor} · ${e.kind}` }),
      e.text || (e.data ? JSON.stringify(e.data) : ""))));
    for (const b of document.querySelectorAll("#queue button")) {
      b.classList.toggle("selected", Number(b.dataset.id) === ticket.id);
    }
  }

  function renderSummary(ticket) {
    const s = ticket.summary || {};
    const c = s.customer || {};
    const rows = [
      ["Why", `${ticket.trigger}${ticket.csat ? ` · rated ${ticket.csat}/5` : ""}`],
      ["Customer", `${c.name || "unknown"} · ${c.language || ""} · last on ${c.last_channel || "?"}`],
      ["Channels", (c.addresses || []).map((a) => `${a.channel} ${a.address}`).join(", ")],
      ["Orders", (s.orders || []).map((o) => `#${o.number} ${o.status} ${money(o.total_cents)}`).join("; ") || "none"],
      ["Cart", (s.cart || []).map((l) => `${l.quantity} × ${l.name} (${l.size}, ${l.colour})`).join("; ") || "empty"],
      ["Wanted", (s.recent_intents || []).join(", ") || "—"],
      ["Last messages", (s.last_messages || []).map((m) => `[${m.channel}] ${m.text}`).join("\n")],
      ["Bot answered", (s.bot_answers || []).join("\n---\n") || "—"],
      ["Policy", s.faq ? `${s.faq.question}\n${s.faq.answer}` : "—"],
    ];
    const review = s.payment_review;
    if (review) {
      // A payment held for a person: what Radar said, and how to confirm the order.
      rows.unshift(["Payment to check", `#${review.order} ${money(review.total_cents)} · risk ${review.risk_level || "?"}`
        + `${review.risk_score == null ? "" : ` (${review.risk_score}/100)`} · confirm with: ${review.confirm}`]);
    }
    const dl = el("dl");
    for (const [k, v] of rows) dl.append(el("dt", { textContent: k }), el("dd", { textContent: v }));
    $("summary").replaceChildren(dl);
  }

  function renderTranscript(entries) {
    const box = $("transcript");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    box.replaceChildren(...entries.map((m) => el("li", { className: `entry ${m.author}` },
      el("span", { className: "meta", textContent: `${m.author} · ${m.channel} · ${time(m.at)}` }),
      (m.text || "") + (m.choices && m.choices.length ? `\n[${m.choices.join(" | ")}]` : ""))));
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  async function act(action, body) {
    if (!current) return;
    try {
      render(await api("POST", `/api/handoffs/${current.id}/${action}`, body));
      showError("");
      return true;
    } catch (err) {
      showError(err.message);
      await loadTicket(current.id);
      return false;
    }
  }

  $("sign-in").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("token").value.trim()); });
  $("sign-out").addEventListener("click", signOut);
  $("status").addEventListener("change", refresh);
  $("claim").addEventListener("click", () => act("claim"));
  $("resolve").addEventListener("click", () => act("resolve"));
  $("transfer").addEventListener("click", () => {
    const value = $("transfer-to").value;
    act("transfer", { agent_id: value ? Number(value) : null });
  });
  $("reply-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("reply-text").value.trim();
    if (text && await act("reply", { text })) $("reply-text").value = "";
  });
  $("note-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("note-text").value.trim();
    if (text && await act("note", { text })) $("note-text").value = "";
  });
  $("available").addEventListener("change", async () => {
    try {
      await api("POST", "/api/handoffs/me", { available: $("available").checked });
    } catch (err) {
      showError(err.message);
    }
  });

  if (token) signIn(token);
})();
