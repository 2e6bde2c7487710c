// Live pages without a reload: the server sends an event whenever the store
// changes; the page fetches itself again and swaps in every element marked
// data-live (by id), so what a person is looking at stays where it is.
// Elements with data-load fetch their content (the figures) after the page.
(function () {
  "use strict";
  const status = document.getElementById("connection");
  let busy = false, again = false;

  function load(element) {
    const url = element.dataset.load;
    if (!url) return;
    fetch(url, { headers: { "Accept": "text/html" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => { element.innerHTML = html; element.dataset.loaded = url; })
      .catch(() => {});
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { headers: { "Accept": "text/html" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        const fresh = new DOMParser().parseFromString(html, "text/html");
        for (const element of document.querySelectorAll("[data-live]")) {
          const next = fresh.getElementById(element.id);
          if (!next) continue;
          if (element.dataset.load) {
            // Loaded content changes only when its source does.
            if (next.dataset.load !== element.dataset.loaded) {
              element.dataset.load = next.dataset.load;
              load(element);
            }
          } else if (next.innerHTML !== element.innerHTML) {
            element.innerHTML = next.innerHTML;
          }
        }
      })
      .catch(() => {})
      .finally(() => { busy = false; if (again) { again = false; refresh(); } });
  }

  document.querySelectorAll("[data-load]").forEach(load);
  if (!window.EventSource) return;
  const events = new EventSource("/events");
  events.addEventListener("change", refresh);
  events.onopen = () => { status.classList.remove("off"); status.textContent = "live"; };
  events.onerror = () => { status.classList.add("off"); status.textContent = "reconnecting"; };
})();
