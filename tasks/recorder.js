// The recorder the worker adds to every page of a recorded session (tasks/session_watch.py), after rrweb's own
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
    const batch = pending;
    pending = [];
    try {
      binding(JSON.stringify(batch));
    } catch (error) {
      // An event that cannot be serialised is dropped, never the page.
    }
  };
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    // rrweb's bundle is only compiled with the document; it runs here, once there is something to record.
    loadRrweb();
    rrweb.record({
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
  // Left to itself, rrweb takes its first full snapshot inside the load event, and the page's load (and whatever
  // waits for it: a script's goto, a create's first navigation) lasts as long as the snapshot. It is taken in the
  // task right after the load event instead, or as the page is left if that comes first: every document still has
  // its full snapshot, which holds whatever changed and was typed before it. Not later (an idle callback): a
  // session stopped right after its page loaded ends its browser, and no page hears of that.
  const soon = () => setTimeout(start);
  const whenLoaded = () => {
    window.addEventListener("pagehide", start, { once: true });
    if (document.readyState === "complete") soon();
    else window.addEventListener("load", soon, { once: true });
  };
  // An empty about:blank (every new tab's first document, a warm browser's page) has nothing to record until
  // something is put in it (a script's setContent): running rrweb there would only hold the create and the first
  // navigation that replaces it.
  const empty = () => location.href === "about:blank" && !document.head?.firstChild && !document.body?.firstChild
    && !document.documentElement?.attributes.length && !document.body?.attributes.length;
  if (!empty()) return whenLoaded();
  const changes = new MutationObserver(() => {
    if (empty()) return;
    changes.disconnect();
    whenLoaded();
  });
  changes.observe(document, { childList: true, subtree: true, attributes: true, characterData: true });
})();
