/* Northwind Outfitters analytics page. Plain ES2020, no dependencies: the dashboard comes
   rendered from the server (tiles, SVG charts, tables); this script signs in, asks for a period
   and downloads each table as CSV. */
(() => {
  "use strict";

  const TOKEN_KEY = "shop_admin_token";   // shared with the marketer page; never in the URL
  const $ = (id) => document.getElementById(id);
  const statusBox = $("status");
  const tokenInput = $("token");
  const tokenState = $("token-state");
  const filters = $("filter-form");
  const board = $("dashboard");

  let token = null;
  try { token = sessionStorage.getItem(TOKEN_KEY); } catch (_) { /* storage disabled */ }

  const show = (message) => { statusBox.textContent = message; statusBox.hidden = false; };
  const clearStatus = () => { statusBox.hidden = true; statusBox.textContent = ""; };

  const describe = (status, error) => {
    if (status === 401) return "The admin token was not accepted. Check it and enter it again.";
    if (status === 403) return `The admin tools are turned off on this server${error ? ` (${error})` : ""}.`;
    if (status === 400) return error ? `Please fix: ${error}.` : "The server did not accept this.";
    return `Server error (${status}). Please try again.`;
  };

  const query = () => {
    const params = new URLSearchParams();
    for (const name of ["from", "to", "channel", "language"]) {
      const value = filters.elements[name].value;
      if (value) params.set(name, value);
    }
    return params;
  };

  const get = async (path) => {
    if (!token) throw new Error("Enter the admin token first.");
    let res;
    try {
      res = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
    } catch (_) {
      throw new Error("Could not reach the server. Check the connection and try again.");
    }
    if (!res.ok) {
      const data = await res.json().catch(() => null);
      const error = data && typeof data.error === "string" ? data.error.replace(/\.$/, "") : "";
      if (res.status === 401 || res.status === 403) tokenState.textContent = "Not signed in.";
      throw new Error(describe(res.status, error));
    }
    return res;
  };

  const load = async () => {
    try {
      const res = await get(`/api/analytics/dashboard?${query()}`);
      board.innerHTML = await res.text();  // rendered and escaped by the server
      clearStatus();
      return true;
    } catch (err) {
      show(err.message);
      return false;
    }
  };

  const download = async (table) => {
    const params = query();
    params.set("format", "csv");
    params.set("table", table);
    try {
      const res = await get(`/api/analytics?${params}`);
      const blob = await res.blob();
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      const named = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "");
      link.download = named ? named[1] : `analytics-${table}.csv`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    } catch (err) {
      show(err.message);
    }
  };

  const teach = async (holder) => {
    const choice = holder.querySelector("select").value;
    if (!choice) { show("Choose an intent or FAQ entry to teach this group as."); return; }
    const [kind, name] = [choice.slice(0, choice.indexOf(":")), choice.slice(choice.indexOf(":") + 1)];
    const body = { example: holder.dataset.example };
    body[kind === "faq" ? "faq" : "intent"] = name;
    let res;
    try {
      res = await fetch(`/api/analytics/review/${holder.dataset.group}/teach?${query()}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (_) {
      show("Could not reach the server. Check the connection and try again.");
      return;
    }
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const error = data && typeof data.error === "string" ? data.error.replace(/\.$/, "") : "";
      show(res.status === 409 || res.status === 404 ? error : describe(res.status, error));
      return;
    }
    const left = data.left_out ? ` (${data.left_out} with masked parts left out)` : "";
    if (await load()) show(`Taught ${data.added} new example(s) as ${name}${left}; the bot uses them now.`);
  };

  board.addEventListener("click", (event) => {
    const button = event.target.closest("button.csv");
    if (button) download(button.dataset.table);
    const teachButton = event.target.closest("button.teach");
    if (teachButton) teach(teachButton.closest("span.teach"));
  });

  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = tokenInput.value.trim();
    if (!value) { show("Enter the admin token."); return; }
    token = value;
    try { sessionStorage.setItem(TOKEN_KEY, value); } catch (_) { /* ignore */ }
    tokenState.textContent = "Checking…";
    if (await load()) {
      tokenState.textContent = "Signed in.";
    } else {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* ignore */ }
    }
  });

  $("forget-token").addEventListener("click", () => {
    token = null;
    tokenInput.value = "";
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* ignore */ }
    board.textContent = "";
    tokenState.textContent = "Token forgotten.";
  });

  filters.addEventListener("submit", (event) => { event.preventDefault(); load(); });

  if (token) {
    tokenState.textContent = "Signed in.";
    load();
  }
})();
