/* Northwind Outfitters web chat widget: plain ES2020, no dependencies. */
(() => {
  "use strict";

  const TOKEN_KEY = "shop_session";
  const POLL_MS = 3000;

  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("chat-input");
  const continueBar = document.getElementById("continue-bar");

  // The widget's own words, in the browser's language (the bot's replies follow the shopper's).
  const ZH = /^zh/i.test(navigator.language || "");
  const UI = ZH ? {
    title: "購物小幫手", status: "Northwind Outfitters · 通常立即回覆", placeholder: "輸入訊息…",
    send: "傳送", inputLabel: "輸入您的訊息", typing: "小幫手正在輸入", attachment: "開啟附件",
    sendFailed: "抱歉，訊息沒有送出。請再試一次。", failed: "抱歉，沒有成功。請再試一次。",
    unavailable: "目前無法使用聊天，正在重試…", session: "無法開始聊天。",
    continueOn: (name) => `改用 ${name} 繼續`, continueSms: "改用簡訊繼續", continueBar: "在其他應用程式繼續這段對話",
    badge: "示範商店", heroTitle: "每條山徑，都準備好了。",
    heroText: "戶外用的外套、登山鞋和背包。問問購物小幫手：找商品、查尺寸、追蹤訂單或付款，都在聊天裡完成。",
  } : {
    title: "Shopping assistant", status: "Northwind Outfitters · usually replies instantly", placeholder: "Type a message…",
    send: "Send", inputLabel: "Type your message", typing: "Assistant is typing", attachment: "Open attachment",
    sendFailed: "Sorry, the message could not be sent. Please try again.", failed: "Sorry, that did not work. Please try again.",
    unavailable: "Chat is unavailable right now. Retrying…", session: "Could not start a chat session.",
    continueOn: (name) => `Continue on ${name}`, continueSms: "Continue by SMS", continueBar: "Continue this chat in another app",
  };
  // The demo page's own words follow the browser's language too (a shop's page keeps its own).
  if (ZH) {
    const place = (selector, text) => { const node = document.querySelector(selector); if (node) node.textContent = text; };
    place(".demo-badge", UI.badge);
    place(".hero h1", UI.heroTitle);
    place(".hero p", UI.heroText);
  }
  const setText = (id, text) => { const node = document.getElementById(id); if (node) node.textContent = text; };
  document.documentElement.lang = ZH ? "zh-TW" : "en";
  setText("chat-title", UI.title);
  setText("send", UI.send);
  input.placeholder = UI.placeholder;
  const inputLabel = document.querySelector('label[for="chat-input"]');
  if (inputLabel) inputLabel.textContent = UI.inputLabel;
  const status = document.querySelector(".chat-status");
  if (status) status.textContent = UI.status;
  continueBar.setAttribute("aria-label", UI.continueBar);

  let token = null;
  try { token = localStorage.getItem(TOKEN_KEY); } catch (_) { /* storage disabled */ }
  let sessionPromise = null;   // de-duplicates concurrent session creation
  let lastId = 0;              // highest message id seen, used as `after`
  const rendered = new Set();  // message ids already on screen
  const pendingTexts = [];     // texts sent from here, so echoed "in" messages are not shown twice
  let sendChain = Promise.resolve();
  let sending = 0;
  let polling = false;
  let resync = false;          // after a session change, re-read its history from after=0
  let configLoaded = false;    // GET /api/web/config answered (or is not available)
  let linkPending = null;      // ?link=... value still to be sent, once history is loaded
  try { linkPending = new URLSearchParams(location.search).get("link"); } catch (_) { /* ignore */ }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  const uuid = () => {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // Fallback for non-secure contexts (plain http on a LAN address).
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };

  const safeUrl = (u) => {
    if (!u) return null;
    try {
      const url = new URL(u, location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_) { return null; }
  };

  // Links for other apps may use their own schemes (sms: has no https form); never javascript: etc.
  const APP_PROTOCOLS = ["http:", "https:", "sms:", "smsto:", "whatsapp:", "fb-messenger:"];
  const safeAppUrl = (u) => {
    if (!u) return null;
    try {
      const url = new URL(String(u), location.href);
      return APP_PROTOCOLS.includes(url.protocol) ? url.href : null;
    } catch (_) { return null; }
  };

  const CHANNEL_NAMES = { whatsapp: "WhatsApp", messenger: "Messenger", sms: "SMS" };
  const channelName = (c) => CHANNEL_NAMES[c] || (String(c).charAt(0).toUpperCase() + String(c).slice(1));
  const continueLabel = (c) => (c === "sms" ? UI.continueSms : UI.continueOn(channelName(c)));

  // ---------- API ----------

  const createSession = () => {
    if (!sessionPromise) {
      sessionPromise = (async () => {
        const res = await fetch("/api/web/session", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: "{}",
        });
        const data = await res.json().catch(() => ({}));
        if (!res.ok || !data.token) throw new ApiError(res.status, data.error || UI.session);
        token = data.token;
        resync = true;
        try { localStorage.setItem(TOKEN_KEY, token); } catch (_) { /* ignore */ }
        return token;
      })().finally(() => { sessionPromise = null; });
    }
    return sessionPromise;
  };

  const ensureToken = async () => token || createSession();

  const api = async (method, path, body, retried = false) => {
    const used = await ensureToken();
    const opts = { method, headers: { Authorization: `Bearer ${used}` } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    if (res.status === 401 && !retried) {
      if (token === used) {       // another call may already have replaced it
        token = null;
        try { localStorage.removeItem(TOKEN_KEY); } catch (_) { /* ignore */ }
      }
      return api(method, path, body, true);
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new ApiError(res.status, data.error || `Request failed (${res.status}).`);
    return data;
  };

  // ---------- rendering ----------

  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  };

  const scrollDown = () => { list.scrollTop = list.scrollHeight; };

  const append = (node) => {
    const typing = list.querySelector(".typing");
    if (typing) list.insertBefore(node, typing); else list.appendChild(node);
    scrollDown();
    return node;
  };

  const note = (text) => append(el("div", "msg system note", text));

  const userBubble = (text) => {
    const wrap = el("div", "msg user");
    wrap.appendChild(el("div", "bubble", text));
    return append(wrap);
  };

  const link = (title, href, className = "link") => {
    const a = el("a", className, title || href);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener";
    return a;
  };

  // Choice and card buttons: send `value`, show `title`, then disable the message's buttons.
  const actionButton = (btn, className, wrap) => {
    const b = el("button", className, btn.title || btn.value);
    b.type = "button";
    b.addEventListener("click", () => {
      wrap.querySelectorAll("button.choice, button.card-button, button.suggestion").forEach((x) => { x.disabled = true; });
      b.classList.add("selected");
      send(String(btn.value ?? btn.title), btn.title || btn.value);
    });
    return b;
  };

  const renderMedia = (m) => {
    const href = safeUrl(m.url);
    if (!href) return null;
    const type = m.content_type || "";
    let node;
    if (type.startsWith("image/")) { node = el("img", "media-image"); node.alt = ""; node.loading = "lazy"; }
    else if (type.startsWith("audio/")) { node = el("audio"); node.controls = true; }
    else if (type.startsWith("video/")) { node = el("video"); node.controls = true; }
    else return link(UI.attachment, href);
    node.src = href;
    return node;
  };

  const renderCard = (card, wrap) => {
    const c = el("div", "card");
    const img = safeUrl(card.image_url);
    if (img) {
      const i = el("img", "card-image");
      i.src = img; i.alt = card.title || ""; i.loading = "lazy";
      c.appendChild(i);
    }
    const body = el("div", "card-body");
    const url = safeUrl(card.url);
    const title = el("div", "card-title");
    if (url) title.appendChild(link(card.title, url, "card-link")); else title.textContent = card.title || "";
    body.appendChild(title);
    if (card.subtitle) body.appendChild(el("div", "card-subtitle", card.subtitle));
    c.appendChild(body);
    if (card.buttons && card.buttons.length) {
      const row = el("div", "card-buttons");
      card.buttons.forEach((b) => row.appendChild(actionButton(b, "card-button", wrap)));
      c.appendChild(row);
    }
    return c;
  };

  const render = (msg) => {
    if (!msg || msg.id == null) return;
    const id = Number(msg.id);
    if (rendered.has(id)) return;
    rendered.add(id);
    if (id > lastId) lastId = id;

    if (msg.direction === "in") {
      const i = pendingTexts.indexOf(msg.text);
      if (i !== -1) { pendingTexts.splice(i, 1); return; }  // already shown locally
      userBubble(msg.text || "");
      return;
    }

    const wrap = el("div", "msg bot");
    wrap.dataset.id = String(id);
    if (msg.text) wrap.appendChild(el("div", "bubble", msg.text));
    (msg.media || []).forEach((m) => {
      const node = renderMedia(m);
      if (node) wrap.appendChild(node);
    });
    if (msg.cards && msg.cards.length) {
      const row = el("div", "cards");
      msg.cards.forEach((c) => row.appendChild(renderCard(c, wrap)));
      wrap.appendChild(row);
    }
    if (msg.links && msg.links.length) {
      const row = el("div", "links");
      msg.links.forEach((l) => { const href = safeUrl(l.url); if (href) row.appendChild(link(l.title, href)); });
      wrap.appendChild(row);
    }
    if (msg.choices && msg.choices.length) {
      const row = el("div", "choices");
      msg.choices.forEach((c) => row.appendChild(actionButton(c, "choice", wrap)));
      wrap.appendChild(row);
    }
    append(wrap);
  };

  const renderAll = (data) => {
    const msgs = (data && Array.isArray(data.messages)) ? data.messages.slice() : [];
    msgs.sort((a, b) => Number(a.id) - Number(b.id)).forEach(render);
  };

  const setTyping = (on) => {
    let t = list.querySelector(".typing");
    if (on && !t) {
      t = el("div", "typing");
      t.setAttribute("aria-label", UI.typing);
      for (let i = 0; i < 3; i++) t.appendChild(el("span", "dot"));
      list.appendChild(t);
      scrollDown();
    } else if (!on && t) {
      t.remove();
    }
  };

  // ---------- "Continue on ..." bar ----------

  const linkNote = (data, channel) => {
    const name = channelName(data.channel || channel);
    const minutes = Number(data.minutes);
    const valid = Number.isFinite(minutes) && minutes > 0
      ? ` (valid ${minutes} ${minutes === 1 ? "minute" : "minutes"})` : "";
    return append(el("div", "msg system link-note",
      `Your code for ${name}: ${data.code}${valid}. Tap the link, or send the code there.`));
  };

  const continueOn = async (channel, button) => {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const data = await api("POST", "/api/web/link", { channel });
      const url = data.url != null ? safeAppUrl(data.url) : null;
      if (url) window.open(url, "_blank", "noopener");
      linkNote(data, channel);
      if (url) {
        // In case a popup blocker stopped window.open (e.g. Safari after an await): a link to tap.
        const row = el("div", "link-open");
        row.appendChild(link(`Open ${channelName(data.channel || channel)}`, url, "link"));
        append(row);
      }
    } catch (err) {
      note(err instanceof ApiError ? err.message : UI.failed);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  };

  const renderContinueBar = (channels) => {
    if (!continueBar) return;
    continueBar.replaceChildren();
    const seen = new Set();
    (Array.isArray(channels) ? channels : []).forEach((c) => {
      if (typeof c !== "string" || !c || c === "web" || seen.has(c)) return;
      seen.add(c);
      const b = el("button", "continue", continueLabel(c));
      b.type = "button";
      b.dataset.channel = c;
      b.addEventListener("click", () => continueOn(c, b));
      continueBar.appendChild(b);
    });
    continueBar.hidden = seen.size === 0;
  };

  // Arriving through a campaign's link (/?product=SKU): that product is shown first.
  const productPending = new URLSearchParams(location.search).get("product");

  const loadConfig = async () => {
    if (configLoaded) return null;
    try {
      const query = productPending ? `?product=${encodeURIComponent(productPending)}` : "";
      const data = await api("GET", "/api/web/config" + query);
      configLoaded = true;
      renderContinueBar(data.link_channels);
      return data;
    } catch (err) {
      // 4xx: not offered here, keep the bar hidden; network/5xx: try again on a later poll.
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) configLoaded = true;
      return null;
    }
  };

  // The greeting and its suggestions for an empty chat: shown, never stored, gone once answered.
  const showWelcome = (welcome) => {
    const wrap = el("div", "msg welcome");
    wrap.appendChild(el("div", "bubble", welcome.text));
    const row = el("div", "choices");
    (welcome.choices || []).forEach((c) => row.appendChild(actionButton(c, "suggestion", wrap)));
    wrap.appendChild(row);
    append(wrap);
  };

  const openWith = (config, arrivedWithLink) => {
    if (productPending != null) {
      try {
        const url = new URL(location.href);
        url.searchParams.delete("product");
        history.replaceState(history.state, "", url.pathname + url.search + url.hash);
      } catch (_) { /* ignore */ }
      if (config && config.product) { send(config.product.command, config.product.name); return; }
    }
    if (config && config.welcome && !arrivedWithLink && rendered.size === 0) showWelcome(config.welcome);
  };

  // Arriving through a link (/?link=...): send it as if typed, then drop it from the address bar.
  const sendPendingLink = () => {
    if (linkPending == null) return;
    const value = linkPending.trim();
    linkPending = null;
    if (value) send(`Link code: ${value}`);
    try {
      const url = new URL(location.href);
      url.searchParams.delete("link");
      history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    } catch (_) { /* ignore */ }
  };

  // ---------- actions ----------

  function send(value, shown) {
    const text = String(value).trim();
    if (!text) return;
    userBubble(shown != null ? String(shown) : text);
    pendingTexts.push(text);
    if (pendingTexts.length > 20) pendingTexts.shift();
    sending++;
    setTyping(true);
    const id = uuid();   // same id on retry so the server can de-duplicate
    sendChain = sendChain.then(async () => {
      try {
        renderAll(await api("POST", "/api/web/messages", { id, text }));
      } catch (err) {
        note(err instanceof ApiError && err.status === 400
          ? err.message
          : UI.sendFailed);
      } finally {
        sending--;
        if (!sending) setTyping(false);
      }
    });
  }

  const poll = async () => {
    if (!polling && !sending) {
      polling = true;
      try {
        const after = resync ? 0 : lastId;
        resync = false;
        renderAll(await api("GET", `/api/web/messages?after=${encodeURIComponent(after)}`));
        sendPendingLink();     // only if init could not load the history
      } catch (_) { /* transient; try again next tick */ }
      polling = false;
      if (!configLoaded) loadConfig();
    }
    setTimeout(poll, POLL_MS);
  };

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    send(text);
    input.focus();
  });

  const init = async () => {
    polling = true;
    try {
      await ensureToken();
      const arrivedWithLink = linkPending != null;
      const config = loadConfig();   // in parallel with the history
      resync = false;
      renderAll(await api("GET", "/api/web/messages?after=0"));
      sendPendingLink();
      openWith(await config, arrivedWithLink);
    } catch (_) {
      note(UI.unavailable);
    }
    polling = false;
    setTimeout(poll, POLL_MS);
  };

  init();
})();
