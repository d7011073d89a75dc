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
  const start = () => {
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
  // Before the document has loaded, rrweb takes its first snapshot once it has (DOMContentLoaded).
  start();
})();
