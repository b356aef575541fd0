/* Northwind Outfitters marketer page: campaigns and cart recovery. Plain ES2020, no dependencies.
   Every text from the API goes in with textContent, never as HTML. */
(() => {
  "use strict";

  const TOKEN_KEY = "shop_admin_token";   // sessionStorage: gone when the tab closes, never in the URL
  const FAST_MS = 1500;                   // while a campaign is sending
  const SLOW_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const statusBox = $("status");
  const tokenForm = $("token-form");
  const tokenInput = $("token");
  const tokenState = $("token-state");
  const form = $("campaign-form");
  const formStatus = $("form-status");
  const previewBox = $("preview");
  const list = $("campaigns");
  const listEmpty = $("list-empty");
  const actionButtons = ["preview-button", "create-button", "schedule-button"].map($);

  let token = null;
  try { token = sessionStorage.getItem(TOKEN_KEY); } catch (_) { /* storage disabled */ }
  let timer = null;
  let loading = null;
  const cards = new Map();  // campaign id -> {node, signature}

  const CHANNELS = { whatsapp: "WhatsApp", sms: "SMS", messenger: "Messenger", web: "Web chat" };
  const LANGUAGES = { en: "English", "zh-TW": "Traditional Chinese" };
  const STATUSES = {
    draft: "Draft", scheduled: "Scheduled", running: "Sending", paused: "Paused", done: "Done",
    cancelled: "Cancelled",
  };
  const REASONS = {
    no_opt_in: "not opted in",
    opted_out: "opted out",
    no_reachable_channel: "no channel to reach them",
    outside_window: "outside the 24-hour window",
    outside_window_no_template: "outside the 24-hour window, no template",
    frequency_cap: "weekly limit reached",
    erased: "data erased",
  };
  const ACTIONS = {
    schedule: { label: "Schedule", done: "scheduled", when: ["draft"] },
    pause: { label: "Pause", done: "paused", when: ["scheduled", "running"] },
    resume: { label: "Resume", done: "resumed", when: ["paused"] },
    cancel: { label: "Cancel", done: "cancelled", when: ["draft", "scheduled", "running", "paused"] },
  };

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  class FormError extends Error {
    constructor(message, field) { super(message); this.field = field; }
  }

  // ---------- small helpers ----------

  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  };

  const channelName = (c) => (c ? CHANNELS[c] || String(c) : "none");
  const languageName = (l) => (l ? (LANGUAGES[l] ? `${LANGUAGES[l]} (${l})` : String(l)) : "unknown");
  const reasonName = (r) => REASONS[r] || String(r || "unknown").replace(/_/g, " ");
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

  const when = (iso) => {
    if (!iso) return "–";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString(undefined, {
      dateStyle: "medium", timeStyle: "short",
    });
  };

  const localToIso = (value) => {
    if (!value) return null;
    const d = new Date(value);  // a datetime-local value is read in the browser's zone
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
  };

  const show = (message, kind = "error") => {
    statusBox.textContent = message;
    statusBox.className = `notice ${kind}`;
    statusBox.hidden = false;
  };
  const clearStatus = () => { statusBox.hidden = true; statusBox.textContent = ""; };

  const say = (message, kind = "ok") => {
    formStatus.textContent = message;
    formStatus.className = `form-status ${kind}`;
  };

  // ---------- API ----------

  const describe = (status, raw) => {
    const error = String(raw || "").trim().replace(/\.$/, "");
    if (status === 401) return "The admin token was not accepted. Check it and enter it again.";
    if (status === 403) {
      return `The marketing tools are turned off on this server${error ? ` (${error})` : ""}.`;
    }
    if (status === 404) return error ? `Not found: ${error}.` : "Not found.";
    if (status === 409) return error ? `Not possible now: ${error}.` : "Not possible in this state.";
    if (status === 400) return error ? `Please fix: ${error}.` : "The server did not accept this.";
    if (status === 413) return "That is too much text to send at once.";
    return error ? `Server error (${status}): ${error}.` : `Server error (${status}). Please try again.`;
  };

  const api = async (method, path, body) => {
    if (!token) throw new ApiError(0, "Enter the admin token first.");
    const opts = { method, headers: { Authorization: `Bearer ${token}`, Accept: "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (_) {
      throw new ApiError(0, "Could not reach the server. Check the connection and try again.");
    }
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const error = data && typeof data.error === "string" ? data.error : "";
      if (res.status === 401 || res.status === 403) signedOut(describe(res.status, error));
      throw new ApiError(res.status, describe(res.status, error));
    }
    return data || {};
  };

  // ---------- the token ----------

  const signedOut = (message) => {
    stopPolling();
    tokenState.textContent = "Not signed in.";
    show(message);
  };

  const useToken = async (value) => {
    token = value;
    try { sessionStorage.setItem(TOKEN_KEY, value); } catch (_) { /* ignore */ }
    tokenState.textContent = "Checking…";
    const ok = await refresh(true);
    if (ok) {
      clearStatus();
      tokenState.textContent = "Signed in.";
    } else {
      // A refused token is not kept for the next visit.
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* ignore */ }
    }
  };

  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = tokenInput.value.trim();
    if (!value) {
      show("Enter the admin token.");
      tokenInput.focus();
      return;
    }
    useToken(value);
  });

  $("forget-token").addEventListener("click", () => {
    token = null;
    tokenInput.value = "";
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* ignore */ }
    stopPolling();
    clearStatus();
    tokenState.textContent = "Token forgotten.";
    tokenInput.focus();
  });

  // ---------- the campaign form ----------

  const checked = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((x) => x.value);
  const whenChoice = () => (form.querySelector('input[name="when"]:checked') || {}).value || "now";

  const syncWhen = () => {
    const choice = whenChoice();
    $("when-at").hidden = choice !== "at";
    $("when-cron").hidden = choice !== "cron";
  };
  form.querySelectorAll('input[name="when"]').forEach((x) => x.addEventListener("change", syncWhen));
  syncWhen();

  /** The form as the API's campaign body, and the schedule body; FormError if incomplete. */
  const readForm = () => {
    const name = $("name").value.trim();
    if (!name) throw new FormError("Give the campaign a name.", "name");

    const segment = {};
    const channels = checked("channel");
    if (channels.length) segment.channel = channels;
    const languages = checked("language");
    if (languages.length) segment.language = languages;
    for (const [id, key] of [["opted-in", "opted_in"], ["open-cart", "has_open_cart"]]) {
      const v = $(id).value;
      if (v) segment[key] = v === "true";
    }
    const categories = $("categories").value.split(",").map((x) => x.trim().toLowerCase()).filter(Boolean);
    if (categories.length) segment.bought_category = categories;
    for (const [id, key] of [["active-after", "last_active_after"], ["active-before", "last_active_before"]]) {
      const raw = $(id).value;
      if (!raw) continue;
      const iso = localToIso(raw);
      if (!iso) throw new FormError("Enter a complete date and time.", id);
      segment[key] = iso;
    }

    const messages = {};
    const en = $("message-en").value.trim();
    const zh = $("message-zh").value.trim();
    if (en) messages.en = en;
    if (zh) messages["zh-TW"] = zh;
    if (!en && !zh) throw new FormError("Write the message in at least one language.", "message-en");

    const spec = { name, segment, messages };
    const sid = $("template-sid").value.trim();
    const varsText = $("template-vars").value;
    if (sid) {
      if (!/^HX[0-9a-fA-F]{32}$/.test(sid)) {
        throw new FormError("The Content SID starts with HX followed by 32 hexadecimal digits.", "template-sid");
      }
      const variables = {};
      varsText.split("\n").forEach((line, i) => {
        if (!line.trim()) return;
        const m = /^\s*(\d+)\s*=(.*)$/.exec(line);
        if (!m) throw new FormError(`Template variables, line ${i + 1}: write number=text, e.g. 1={name}.`, "template-vars");
        variables[m[1]] = m[2].trim();
      });
      spec.templates = { whatsapp: { content_sid: sid, variables } };
    } else if (varsText.trim()) {
      throw new FormError("Template variables need a Content SID.", "template-sid");
    }

    const choice = whenChoice();
    let schedule = {};
    if (choice === "at") {
      const iso = localToIso($("send-at").value);
      if (!iso) throw new FormError("Choose the date and time to send at.", "send-at");
      spec.send_at = iso;
      schedule = { send_at: iso };
    } else if (choice === "cron") {
      const cron = $("cron").value.trim();
      if (!cron) throw new FormError("Enter a cron schedule, e.g. 0 10 * * MON.", "cron");
      spec.cron = cron;
      schedule = { cron };
    }
    return { spec, schedule };
  };

  const setBusy = (busy) => {
    actionButtons.forEach((b) => { b.disabled = busy; });
    form.setAttribute("aria-busy", busy ? "true" : "false");
  };

  const formAction = async (work) => {
    let parts;
    try {
      parts = readForm();
    } catch (err) {
      if (!(err instanceof FormError)) throw err;
      say(err.message, "error");
      const field = $(err.field);
      if (field) {
        if (field.closest("details")) field.closest("details").open = true;
        field.focus();
      }
      return;
    }
    setBusy(true);
    say("Working…", "pending");
    try {
      await work(parts);
    } catch (err) {
      say(err instanceof ApiError ? err.message : `Something went wrong: ${err.message}`, "error");
    } finally {
      setBusy(false);
    }
  };

  // Why the policy gate would leave a shopper out, in a marketer's words.
  const SKIP_REASONS = {
    opted_out: "opted out of offers",
    no_opt_in: "never opted in (SMS and WhatsApp need it)",
    outside_window_no_template: "WhatsApp: last message over 24 h ago and no template given",
    outside_window: "Messenger: last message over 24 h ago",
    frequency_cap: "already got the weekly maximum of offers",
    no_reachable_channel: "only on the web chat (nobody to reach)",
    erased: "asked to be forgotten",
  };

  const renderPreview = (data) => {
    const count = Number(data.audience) || 0;
    $("audience").textContent = String(count);
    $("receiving").textContent = String(Number(data.receiving) || 0);
    $("audience-unit").textContent = count === 1 ? "shopper" : "shoppers";
    const reasons = $("skipped-reasons");
    reasons.replaceChildren();
    for (const [reason, n] of Object.entries(data.skipped || {})) {
      reasons.append(el("li", null, `${plural(Number(n) || 0, "shopper", "shoppers")}: ${SKIP_REASONS[reason] || reason}`));
    }
    const rows = $("split-rows");
    rows.replaceChildren();
    for (const row of data.by_channel_language || []) {
      const tr = el("tr");
      tr.append(el("td", null, channelName(row.channel)), el("td", null, languageName(row.language)),
        el("td", "num", row.count));
      rows.append(tr);
    }
    if (!rows.children.length) {
      const tr = el("tr");
      const td = el("td", "empty", "Nobody matches these filters.");
      td.colSpan = 3;
      tr.append(td);
      rows.append(tr);
    }
    const samples = $("samples");
    samples.replaceChildren();
    for (const sample of data.samples || []) {
      const li = el("li", "sample");
      const meta = sample.channel
        ? `${channelName(sample.channel)} · ${languageName(sample.language)}`
        : `Example (nobody matches) · ${languageName(sample.language)}`;
      li.append(el("p", "sample-meta", meta));
      li.append(el("p", "sample-text", sample.text));
      if (sample.template) {
        li.append(el("p", "sample-meta", `Outside the 24-hour window: template ${sample.template}`));
      }
      samples.append(li);
    }
    previewBox.hidden = false;
  };

  $("preview-button").addEventListener("click", () => formAction(async ({ spec }) => {
    const data = await api("POST", "/api/campaigns/preview", spec);
    renderPreview(data);
    say(`Preview ready: ${plural(Number(data.receiving) || 0, "shopper", "shoppers")} would get it.`);
  }));

  $("create-button").addEventListener("click", () => formAction(async ({ spec }) => {
    const campaign = await api("POST", "/api/campaigns", spec);
    say(`Draft “${campaign.name}” (#${campaign.id}) created. Schedule it from the list when ready.`);
    await refresh();
  }));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    formAction(async ({ spec, schedule }) => {
      const campaign = await api("POST", "/api/campaigns", spec);
      let scheduled;
      try {
        scheduled = await api("POST", `/api/campaigns/${campaign.id}/schedule`, schedule);
      } catch (err) {
        await refresh();
        throw new ApiError(err.status, `Draft #${campaign.id} was created but not scheduled. ${err.message}`);
      }
      const next = scheduled.next_run_at ? ` Next run: ${when(scheduled.next_run_at)}.` : "";
      const state = (STATUSES[scheduled.status] || String(scheduled.status)).toLowerCase();
      say(`“${scheduled.name}” (#${scheduled.id}) is ${state}.${next}`);
      await refresh();
    });
  });

  // ---------- the campaign list ----------

  const segmentSummary = (segment) => {
    const parts = [];
    const list_ = (v) => (Array.isArray(v) ? v : [v]);
    if (segment.channel) parts.push(list_(segment.channel).map(channelName).join(", "));
    if (segment.language) parts.push(list_(segment.language).map(languageName).join(", "));
    if (segment.opted_in != null) parts.push(segment.opted_in ? "opted in" : "not opted in");
    if (segment.has_open_cart != null) parts.push(segment.has_open_cart ? "with an open cart" : "no open cart");
    if (segment.bought_category) parts.push(`bought ${list_(segment.bought_category).join(", ")}`);
    if (segment.last_active_after) parts.push(`active since ${when(segment.last_active_after)}`);
    if (segment.last_active_before) parts.push(`inactive since ${when(segment.last_active_before)}`);
    return parts.length ? parts.join(" · ") : "Everyone";
  };

  const stat = (dl, key, label, value) => {
    const box = el("div");
    box.dataset.stat = key;
    box.append(el("dt", null, label), el("dd", null, value));
    dl.append(box);
  };

  const buildCard = (c) => {
    const li = el("li", "campaign");
    li.dataset.id = String(c.id);
    li.setAttribute("aria-labelledby", `campaign-${c.id}-name`);

    const head = el("div", "campaign-head");
    const title = el("h3", null, c.name);
    title.id = `campaign-${c.id}-name`;
    const badge = el("span", `status status-${String(c.status).replace(/[^a-z]/g, "")}`,
      STATUSES[c.status] || c.status);
    badge.dataset.status = c.status;
    head.append(title, el("span", "campaign-id", `#${c.id}`), badge);
    li.append(head);

    const facts = el("dl", "facts");
    const fact = (label, value) => { facts.append(el("dt", null, label), el("dd", null, value)); };
    fact("Audience", segmentSummary(c.segment || {}));
    const texts = c.messages || {};
    fact("Message", texts.en || texts[Object.keys(texts)[0]] || "");
    if (c.templates && c.templates.whatsapp) fact("WhatsApp template", c.templates.whatsapp.content_sid);
    fact("When", c.cron ? `Repeats: ${c.cron}` : c.send_at ? when(c.send_at) : "When scheduled");
    fact("Next run", c.next_run_at ? when(c.next_run_at) : "–");
    fact("Runs", String(c.runs || 0));
    li.append(facts);

    const s = c.stats || {};
    const dl = el("dl", "stats");
    dl.setAttribute("aria-label", `Results of ${c.name}`);
    stat(dl, "targeted", "Targeted", s.targeted ?? 0);
    stat(dl, "sent", "Sent", s.sent ?? 0);
    stat(dl, "delivered", "Delivered", s.delivered ?? 0);
    stat(dl, "read", "Read", s.read ?? 0);
    stat(dl, "failed", "Failed", s.failed ?? 0);
    stat(dl, "clicked", "Clicked", s.clicked ?? 0);
    stat(dl, "converted", "Converted", s.converted ?? 0);
    if (s.waiting) stat(dl, "waiting", "Waiting", s.waiting);
    li.append(dl);

    const skipped = Object.entries(s.skipped || {}).filter(([, n]) => n);
    const skip = el("p", "skipped");
    skip.dataset.stat = "skipped";
    if (skipped.length) {
      const total = skipped.reduce((sum, [, n]) => sum + n, 0);
      skip.append(el("strong", null, `Skipped ${total}: `));
      skip.append(skipped.map(([reason, n]) => `${reasonName(reason)} ${n}`).join(", "));
    } else {
      skip.textContent = "Skipped: none";
    }
    li.append(skip);

    const buttons = el("div", "campaign-actions");
    for (const [action, spec] of Object.entries(ACTIONS)) {
      if (!spec.when.includes(c.status)) continue;
      const b = el("button", action === "cancel" ? "danger" : null, spec.label);
      b.type = "button";
      b.dataset.action = action;
      b.setAttribute("aria-label", `${spec.label} ${c.name}`);
      b.addEventListener("click", () => campaignAction(c, action, b));
      buttons.append(b);
    }
    if (buttons.children.length) li.append(buttons);
    return li;
  };

  const renderCampaigns = (items) => {
    const seen = new Set();
    let previous = null;
    for (const c of items) {
      seen.add(c.id);
      const signature = JSON.stringify(c);
      let entry = cards.get(c.id);
      if (!entry || entry.signature !== signature) {
        const focused = entry && entry.node.contains(document.activeElement)
          ? document.activeElement.dataset.action : null;
        const node = buildCard(c);
        if (entry) entry.node.replaceWith(node);
        entry = { node, signature };
        cards.set(c.id, entry);
        if (focused) {
          const again = node.querySelector(`button[data-action="${focused}"]`);
          (again || node.querySelector("button") || node).focus?.();
        }
      }
      // Keep the server's order (newest first).
      const want = previous ? previous.nextSibling : list.firstChild;
      if (want !== entry.node) list.insertBefore(entry.node, want);
      previous = entry.node;
    }
    for (const [id, entry] of cards) {
      if (!seen.has(id)) { entry.node.remove(); cards.delete(id); }
    }
    listEmpty.hidden = items.length > 0;
  };

  const campaignAction = async (c, action, button) => {
    if (action === "cancel" && !window.confirm(`Cancel “${c.name}”? Messages not sent yet are dropped.`)) return;
    button.disabled = true;
    try {
      const updated = await api("POST", `/api/campaigns/${c.id}/${action}`);
      show(`“${updated.name}” ${ACTIONS[action].done}.`, "ok");
    } catch (err) {
      show(err instanceof ApiError ? err.message : `Something went wrong: ${err.message}`);
      button.disabled = false;
    }
    await refresh();
  };

  // ---------- metrics ----------

  const fillRows = (tbody, rows, empty) => {
    tbody.replaceChildren();
    for (const cells of rows) {
      const tr = el("tr");
      cells.forEach((cell, i) => tr.append(el("td", i === cells.length - 1 ? "num" : null, cell)));
      tbody.append(tr);
    }
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", "empty", empty);
      td.colSpan = tbody.closest("table").querySelectorAll("thead th").length;
      tr.append(td);
      tbody.append(tr);
    }
  };

  const SOURCES = { campaign: "Campaigns", cart_reminder: "Cart reminders", restock: "Back in stock" };

  const renderMetrics = (m) => {
    const carts = m.carts || {};
    $("carts-reminded").textContent = String(carts.carts_reminded ?? 0);
    $("carts-recovered").textContent = String(carts.carts_recovered ?? 0);
    const rate = Number(carts.recovery_rate) || 0;
    $("recovery-rate").textContent = `${(rate * 100).toFixed(rate * 100 % 1 ? 1 : 0)}%`;
    fillRows($("outbox-rows"), Object.entries(m.outbox || {}).sort().map(([k, n]) => [k, String(n)]),
      "No messages yet.");
    fillRows($("proactive-rows"), Object.entries(m.proactive || {}).sort().map(([k, n]) => {
      const at = k.indexOf(":");
      const source = at < 0 ? k : k.slice(0, at);
      return [SOURCES[source] || source.replace(/_/g, " "), at < 0 ? "" : k.slice(at + 1), String(n)];
    }), "None yet.");
  };

  // ---------- loading and polling ----------

  const stopPolling = () => { if (timer) { clearTimeout(timer); timer = null; } };

  const busyCampaigns = (items) => items.some((c) => c.status === "running"
    || (c.stats && c.stats.waiting > 0)
    // A campaign scheduled with no next run is being picked up right now.
    || (c.status === "scheduled" && (!c.next_run_at || new Date(c.next_run_at) - Date.now() < 60000)));

  /** Load campaigns and metrics; true if it worked. `loud`: errors go to the notice too. */
  const refresh = (loud = false) => {
    if (loading) return loading.then(() => refresh(loud));  // reload after the one under way
    loading = (async () => {
      stopPolling();
      try {
        const [data, metrics] = await Promise.all([api("GET", "/api/campaigns"), api("GET", "/api/metrics")]);
        const items = Array.isArray(data.campaigns) ? data.campaigns : [];
        renderCampaigns(items);
        renderMetrics(metrics);
        if (!document.hidden) timer = setTimeout(refresh, busyCampaigns(items) ? FAST_MS : SLOW_MS);
        return true;
      } catch (err) {
        if (loud || err.status === 401 || err.status === 403) show(err.message);
        else if (token) timer = setTimeout(refresh, SLOW_MS);  // a blip: try again later
        return false;
      } finally {
        loading = null;
      }
    })();
    return loading;
  };

  $("refresh").addEventListener("click", () => { if (token) refresh(true); else show("Enter the admin token first."); });

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && token && !timer) refresh();
  });

  if (token) {
    tokenInput.value = token;
    useToken(token);
  } else {
    tokenState.textContent = "Not signed in.";
  }
})();
