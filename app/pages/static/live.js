// The live view: frames from /live/<id>/socket drawn into an <img>; mouse, wheel and keys sent back.
// Input positions are fractions of the picture (0..1): the server scales them to the page's viewport.
"use strict";
(() => {
  const sessionId = location.pathname.split("/").filter(Boolean)[1];
  const query = new URLSearchParams(location.search);
  const screen = document.getElementById("screen");
  const notice = document.getElementById("notice");
  const tabsBar = document.getElementById("tabs");
  const address = document.getElementById("address");
  const mode = document.getElementById("mode");
  // Read by tests and bench/live_view.py: how many frames were shown and when the last one was.
  const state = window.liveView = {
    frames: 0, lastFrameAt: 0, readOnly: query.get("readOnly") === "1", ended: false, opened: false,
    watched: null, tabs: [], tabUpdates: 0, width: 0, height: 0,
  };

  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  function end(text) {
    state.ended = true;
    document.body.classList.add("ended");
    say(text);
  }

  function showMode() {
    mode.textContent = state.readOnly ? "read-only" : "interactive";
  }

  function drawTabs(message) {
    state.tabUpdates += 1;
    state.watched = message.watched;
    state.tabs = message.tabs;
    state.readOnly = state.readOnly || message.readOnly;
    showMode();
    tabsBar.replaceChildren(...message.tabs.map((tab) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = tab.title || tab.url || "New tab";
      button.title = tab.url;
      button.className = tab.id === message.watched ? "tab watched" : "tab";
      button.addEventListener("click", () => send({type: "switch", targetId: tab.id}));
      return button;
    }));
    const watched = message.tabs.find((tab) => tab.id === message.watched);
    address.textContent = watched ? watched.url : "";
  }

  const stage = document.getElementById("stage");
  // The picture fills the stage at the page's aspect ratio, so the <img> box is exactly the picture.
  function fit() {
    if (!state.width || !state.height) return;
    const scale = Math.min(stage.clientWidth / state.width, stage.clientHeight / state.height);
    screen.style.width = `${Math.floor(state.width * scale)}px`;
    screen.style.height = `${Math.floor(state.height * scale)}px`;
  }
  window.addEventListener("resize", fit);

  function drawFrame(message) {
    if (message.width !== state.width || message.height !== state.height) {
      state.width = message.width;
      state.height = message.height;
      fit();
    }
    screen.src = "data:image/jpeg;base64," + message.data;
    screen.decode().then(() => {
      state.frames += 1;
      state.lastFrameAt = Date.now();
      if (!state.ended) say("");
    }, () => {});
  }

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/live/${sessionId}/socket${location.search}`);
  socket.addEventListener("open", () => { state.opened = true; say("Waiting for the first frame…"); });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "frame") drawFrame(message);
    else if (message.type === "tabs") drawTabs(message);
    else if (message.type === "ended") end(message.message);
  });
  socket.addEventListener("close", () => {
    if (state.ended) return;
    end(state.opened ? "The live view was disconnected; the session has probably ended."
      : "This live view is not available: the session has ended, or the link has expired or was revoked.");
  });

  function send(message) {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function modifiers(event) {
    return (event.altKey ? 1 : 0) | (event.ctrlKey ? 2 : 0) | (event.metaKey ? 4 : 0) | (event.shiftKey ? 8 : 0);
  }

  function point(event) {
    const box = screen.getBoundingClientRect();
    return {x: (event.clientX - box.left) / box.width, y: (event.clientY - box.top) / box.height};
  }

  const BUTTONS = ["left", "middle", "right"];
  function mouse(action, event) {
    if (state.readOnly) return;
    send({type: "mouse", action, ...point(event), button: action === "mouseMoved" ? "none" : BUTTONS[event.button] || "none",
          clickCount: action === "mouseMoved" ? 0 : event.detail || 1, modifiers: modifiers(event)});
  }

  let moving = null;
  screen.addEventListener("mousedown", (event) => { event.preventDefault(); screen.focus(); mouse("mousePressed", event); });
  screen.addEventListener("mouseup", (event) => { event.preventDefault(); mouse("mouseReleased", event); });
  screen.addEventListener("mousemove", (event) => {
    // At most one move per animation frame: enough for hover effects and drags.
    if (moving === null) requestAnimationFrame(() => { mouse("mouseMoved", moving); moving = null; });
    moving = event;
  });
  screen.addEventListener("contextmenu", (event) => event.preventDefault());
  screen.addEventListener("wheel", (event) => {
    event.preventDefault();
    if (!state.readOnly) send({type: "wheel", ...point(event), deltaX: event.deltaX, deltaY: event.deltaY, modifiers: modifiers(event)});
  }, {passive: false});
  for (const [kind, action] of [["keydown", "keyDown"], ["keyup", "keyUp"]]) {
    screen.addEventListener(kind, (event) => {
      event.preventDefault();
      if (!state.readOnly) send({type: "key", action, key: event.key, code: event.code, keyCode: event.keyCode, modifiers: modifiers(event)});
    });
  }
  showMode();
})();
