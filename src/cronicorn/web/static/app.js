// Cronicorn dashboard: live fragments and confirmations. No inline scripts (strict CSP).
(function () {
  "use strict";

  // <div data-poll="/path" data-poll-ms="3000"> is re-rendered in place from the server,
  // unless the page is hidden or the user is working inside it.
  function poll(el) {
    var url = el.getAttribute("data-poll");
    var every = parseInt(el.getAttribute("data-poll-ms"), 10) || 5000;
    function tick() {
      var busy = document.hidden || el.contains(document.activeElement) ||
        el.querySelector("details[open]") !== null;
      if (busy) { setTimeout(tick, every); return; }
      fetch(url, { credentials: "same-origin", headers: { "X-Fragment": "1" } })
        .then(function (response) {
          if (response.status === 401) { window.location.assign("/"); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) { el.innerHTML = html; }
        })
        .catch(function () { /* offline: try again next time */ })
        .then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }

  function init() {
    var live = document.querySelectorAll("[data-poll]");
    for (var i = 0; i < live.length; i++) { poll(live[i]); }
    document.addEventListener("submit", function (event) {
      var message = event.target.getAttribute("data-confirm");
      if (message && !window.confirm(message)) { event.preventDefault(); }
    });
    var created = document.getElementById("created-key");
    if (created) { created.focus(); created.select(); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
