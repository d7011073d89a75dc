// The sessions dashboard: a client of the public /v1 API. The key lives only in this tab (sessionStorage)
// and goes out as X-API-Key; nothing is built from HTML strings, so no field of a record can inject markup.
"use strict";
(() => {
  const KEY = "browserBroker.apiKey";
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 5000;
  let timer = null;

  async function call(method, path) {
    const response = await fetch(path, {method, headers: {"X-API-Key": sessionStorage.getItem(KEY) || ""}});
    if (response.status === 401) {
      forget("That key was refused (unknown, revoked or expired).");
      throw new Error("unauthorised");
    }
    const body = response.status === 204 ? null : await response.json();
    if (!response.ok) throw new Error(body && body.message || `${method} ${path}: ${response.status}`);
    return body;
  }

  function cell(row, content, className) {
    const td = row.insertCell();
    if (content instanceof Node) td.append(content); else td.textContent = content ?? "—";
    if (className) td.className = className;
    return td;
  }

  function age(iso) {
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return `${seconds} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
    return `${Math.floor(seconds / 3600)} h ${Math.floor(seconds % 3600 / 60)} min`;
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  function fill(table, rows, build) {
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const item of rows) build(body.insertRow(), item);
    if (!rows.length) cell(body.insertRow(), "none").colSpan = table.tHead.rows[0].cells.length;
  }

  function sessionRow(row, session) {
    row.dataset.id = session.id;
    cell(row, session.id, "id");
    cell(row, session.status, `status-${session.status}`);
    cell(row, age(session.createdAt));
    cell(row, session.worker);
    cell(row, session.contextId, "id");
    cell(row, session.proxyId, "id");
    cell(row, session.stopReason);
    const views = document.createElement("span");
    if (session.liveViewUrl) views.append(link(session.liveViewUrl, "open"), " · ");
    // A key without sessions:write gets the read-only link only.
    if (session.liveViewReadOnlyUrl) views.append(link(session.liveViewReadOnlyUrl, "watch"));
    // A recorded session's replay stays after the stop, as long as its recording is kept.
    if (session.recordingUrl) views.append(views.childNodes.length ? " · " : "", link(session.recordingUrl, "replay"));
    cell(row, views);
    const stop = document.createElement("button");
    stop.type = "button";
    stop.textContent = "Stop";
    stop.className = "stop";
    stop.hidden = session.status !== "running";
    stop.addEventListener("click", async () => {
      stop.disabled = true;
      try { await call("DELETE", `/v1/sessions/${session.id}`); } catch (error) { $("error").textContent = error.message; }
      load();
    });
    cell(row, stop);
  }

  async function list(path, table, build) {
    try {
      fill(table, await call("GET", path), build);
    } catch (error) {
      if (error.message !== "unauthorised") {
        fill(table, [], build);
        $("error").textContent = error.message;
      }
    }
  }

  async function load() {
    clearTimeout(timer);
    $("error").textContent = "";
    await list("/v1/sessions?page_size=100", $("sessions"), sessionRow);
    await list("/v1/contexts?page_size=100", $("contexts"), (row, c) => {
      cell(row, c.id, "id"); cell(row, c.name); cell(row, c.updatedAt); cell(row, String(c.cookieCount));
      cell(row, c.snapshotBytes ? `${Math.ceil(c.snapshotBytes / 1024)} KiB` : "—"); cell(row, c.lastSessionId, "id");
    });
    await list("/v1/proxies?page_size=100", $("proxies"), (row, p) => {
      cell(row, p.id, "id"); cell(row, p.name); cell(row, p.server); cell(row, p.username); cell(row, p.createdAt);
    });
    if (sessionStorage.getItem(KEY)) timer = setTimeout(load, REFRESH_MS);
  }

  function show(signedIn) {
    $("login").hidden = signedIn;
    $("content").hidden = !signedIn;
    $("forget").hidden = !signedIn;
  }

  function forget(message) {
    clearTimeout(timer);
    sessionStorage.removeItem(KEY);
    $("login-error").textContent = message || "";
    show(false);
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    show(true);
    load();
  });
  $("forget").addEventListener("click", () => forget(""));
  $("refresh").addEventListener("click", load);
  show(Boolean(sessionStorage.getItem(KEY)));
  if (sessionStorage.getItem(KEY)) load();
})();
