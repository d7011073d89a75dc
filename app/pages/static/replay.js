// The replay page: fetches the session's recording with the page's own credential and plays one tab at a time.
"use strict";
(async () => {
  const status = document.getElementById("status");
  const sessionId = location.pathname.split("/")[2];
  document.getElementById("session").textContent = sessionId;
  const answer = await fetch(`/replay/${sessionId}/recording${location.search}`, { cache: "no-store" });
  if (!answer.ok) {
    status.textContent = "This replay link does not open a recording (deleted, expired or wrong).";
    return;
  }
  const events = await answer.json();
  const tabs = new Map();
  for (const event of events) {
    if (!tabs.has(event.tabId)) tabs.set(event.tabId, []);
    tabs.get(event.tabId).push(event);
  }
  // Chunks keep the order the worker heard the events in; the player needs each tab's in time order.
  for (const tabEvents of tabs.values()) tabEvents.sort((a, b) => a.timestamp - b.timestamp);
  const select = document.getElementById("tabs");
  for (const [tab, tabEvents] of tabs) {
    const option = document.createElement("option");
    option.value = tab;
    option.textContent = `${tab.slice(0, 8)} (${tabEvents.length} events)`;
    select.append(option);
  }
  const capped = events.some((e) => e.type === 5 && e.data && e.data.tag === "broker.recording-capped");
  const Player = window.rrwebPlayer.Player || window.rrwebPlayer.default || window.rrwebPlayer;
  let player = null;
  const show = (tab) => {
    const tabEvents = tabs.get(tab) || [];
    const target = document.getElementById("player");
    target.replaceChildren();
    if (tabEvents.filter((e) => e.type === 2).length === 0) {
      status.textContent = "Nothing recorded in this tab yet.";
      return;
    }
    status.textContent = `${events.length} events in ${tabs.size} tab(s)` + (capped ? "; the recording reached its size cap" : "");
    player = new Player({ target, props: { events: tabEvents, width: 1024, height: 576, autoPlay: false, showWarning: false } });
    window.bbReplay = { player, tabs: [...tabs.keys()], events: tabEvents.length };
  };
  select.addEventListener("change", () => show(select.value));
  if (tabs.size === 0) {
    status.textContent = "Nothing recorded yet.";
    window.bbReplay = { player: null, tabs: [], events: 0 };
    return;
  }
  show(select.value);
})();
