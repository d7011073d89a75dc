// The recorder the worker adds to every page of a recorded session (tasks/session_watch.py), after rrweb's own
// bundle, in an isolated world: the page's scripts share the DOM with it but none of its JavaScript, so they can
// neither see rrweb nor the binding it reports through, nor stop them. Only the top frame records; rrweb takes
// same-origin iframes in from there.
(() => {
  const binding = globalThis.__bbRecorderEmit;
  if (window.top !== window || typeof binding !== "function" || globalThis.__bbRecording) return;
  globalThis.__bbRecording = true;
  const FLUSH_MS = 250;
  let pending = [];
  let timer = null;
  const flush = () => {
    timer = null;
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    try {
      binding(JSON.stringify(batch));
    } catch (error) {
      // An event that cannot be serialised is dropped, never the page.
    }
  };
  const start = () => {
    rrweb.record({
      emit(event) {
        pending.push(event);
        if (timer === null) timer = setTimeout(flush, FLUSH_MS);
      },
      // Typed text is what a debugging team needs to see; passwords stay masked (rrweb's default).
      maskInputOptions: { password: true },
      sampling: { mousemove: 50, scroll: 150 },
      inlineStylesheet: true,
      recordCanvas: false,
      collectFonts: false,
    });
    addEventListener("pagehide", flush);
  };
  // Before the document has loaded, rrweb takes its first snapshot once it has (DOMContentLoaded).
  start();
})();
