// opsledger dashboard: live updates (served by the binary at /assets/live.js; no build step).
// A page's <main data-live="..."> names what it shows: "*" for anything, ID prefixes ("INC-")
// or IDs ("CHG-7"); empty for none. When /events says one of those changed, the page fetches
// itself again and swaps its <main>, keeping the scroll position. When the server says the page
// fell behind ("reload"), it reloads whole. Without JavaScript the Refresh link does the same.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var wants = main.getAttribute("data-live").split(/\s+/).filter(Boolean);
  if (wants.length === 0) return;
  var root = document.documentElement, busy = false, again = false;
  function shows(ids) {
    return ids.some(function (id) {
      return id === "*" || wants.some(function (w) {
        return w === "*" || w === id || (w.slice(-1) === "-" && id.indexOf(w) === 0);
      });
    });
  }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        // Signed out meanwhile: the whole page shows the way back in.
        if (r.status === 401) { location.reload(); throw new Error("signed out"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var next = fresh.querySelector("main[data-live]");
        if (!next) throw new Error("no <main> in the page");
        main.replaceWith(document.adoptNode(next));
        main = next;
        document.title = fresh.title;
        root.classList.remove("stale");
        root.setAttribute("data-updated", String(Date.now()));
      })
      .catch(function () { root.classList.add("stale"); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }
  var source = new EventSource("/events");
  // The page's stream, for scripts of one's own (and the browser tests) to listen to.
  window.opsledgerLive = source;
  // On every (re)connection: whatever changed while the stream was not open is fetched now.
  source.addEventListener("open", function () { root.classList.add("live"); refresh(); });
  source.addEventListener("error", function () { root.classList.remove("live"); });
  source.addEventListener("change", function (e) {
    if (shows(String(e.data).split(" "))) refresh();
  });
  source.addEventListener("reload", function () { source.close(); location.reload(); });
})();
