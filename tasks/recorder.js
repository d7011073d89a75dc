// The recorder the worker adds to every page of a recorded session (tasks/session_watch.py), after rrweb's record
// bundle, in an isolated world: the page's scripts share the DOM with it but none of its JavaScript, so they can
// neither see rrweb nor the binding it reports through, nor stop them. Only the top frame records; rrweb takes
// same-origin iframes in from there.
(() => {
  const binding = globalThis.__bbRecorderEmit;
  if (window.top !== window || typeof binding !== "function" || globalThis.__bbRecording) return;
  globalThis.__bbRecording = true;
  // Events of one task go in one binding call, at its end (a microtask): nothing waits on a timer that a
  // navigation would cut short, and a burst (a mutation storm) is still one message.
  let pending = [];
  const flush = () => {
    if (!pending.length) return;
    const batch = pending;
    pending = [];
    try {
      binding(JSON.stringify(batch));
    } catch (error) {
      // An event that cannot be serialised is dropped, never the page.
    }
  };
  let armed = false;
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    disarm();
    // rrweb's bundle is only compiled with the document; it runs here, once the recording starts.
    loadRrweb();
    rrwebRecord.record({
      emit(event) {
        if (pending.push(event) === 1) queueMicrotask(flush);
      },
      // Typed text is what a debugging team needs to see; passwords stay masked (rrweb's default).
      maskInputOptions: { password: true },
      sampling: { mousemove: 50, scroll: 150 },
      inlineStylesheet: true,
      recordCanvas: false,
      collectFonts: false,
    });
  };
  // The recording starts with rrweb's full snapshot (the DOM, input values included, as it is then), which holds
  // the page's main thread for as long as it takes: 40-60 ms for 1500 elements. Taken as the page loads, it holds
  // whatever a script does next (its title(), its click), so it waits until one of these comes first:
  // - the page's first input (a key, a pointer press, a focus, a wheel), in the capture phase before the page
  //   hears it: the snapshot shows the page as it was, and what the input does is recorded as it happens;
  // - the page sitting quiet a while after its load (QUIET_MS, then an idle moment);
  // - the page being left: beforeunload for a navigation (Chromium delivers what the binding is given then, and
  //   drops what it is given at a navigation's pagehide), pagehide for a tab closed (beforeunload does not fire);
  // - the session's stop: the worker calls __bbRecorderFinish before it ends the browser, where no page hears of it.
  // Little is lost by waiting: whatever the page changed meanwhile is in the snapshot; only mouse moves before it
  // are not recorded. Both leaving events stay heard for the page's life: what is pending is handed over while it
  // still can be.
  const QUIET_MS = 1500;
  // A page that never finishes loading starts recording this long after it had something to record.
  const LATEST_MS = 10000;
  const INPUTS = ["keydown", "pointerdown", "focusin", "wheel", "touchstart"];
  const timers = [];
  const startAndFlush = () => {
    start();
    flush();
  };
  const afterLoad = () => timers.push(setTimeout(() => requestIdleCallback(start, { timeout: QUIET_MS }), QUIET_MS));
  const arm = () => {
    armed = true;
    for (const type of INPUTS) window.addEventListener(type, start, { capture: true, passive: true });
    window.addEventListener("beforeunload", startAndFlush);
    window.addEventListener("pagehide", startAndFlush);
    timers.push(setTimeout(start, LATEST_MS));
    if (document.readyState === "complete") afterLoad();
    else window.addEventListener("load", afterLoad, { once: true });
  };
  const disarm = () => {
    for (const type of INPUTS) window.removeEventListener(type, start, { capture: true });
    timers.forEach(clearTimeout);
  };
  globalThis.__bbRecorderFinish = () => {
    if (armed) start();
    flush();
    return started;
  };
  // An empty about:blank (every new tab's first document, a warm browser's page) has nothing to record until
  // something is put in it (a script's setContent): running rrweb there would only hold the create and the first
  // navigation that replaces it.
  const empty = () => location.href === "about:blank" && !document.head?.firstChild && !document.body?.firstChild
    && !document.documentElement?.attributes.length && !document.body?.attributes.length;
  if (!empty()) return arm();
  const changes = new MutationObserver(() => {
    if (empty()) return;
    changes.disconnect();
    arm();
  });
  changes.observe(document, { childList: true, subtree: true, attributes: true, characterData: true });
})();
