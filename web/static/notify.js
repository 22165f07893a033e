// Desktop notifications of new escalations, opt-in per browser.
//
// The page carries <span id="notify" data-feed="/inbox/escalations.json"> for agents and admins.
// Once the agent clicks "Enable notifications" (and the browser grants permission), this polls the
// feed every POLL_MS and raises one notification per conversation that newly needs a person;
// clicking it opens the conversation. The feed's cursor is kept for the tab (sessionStorage), so a
// reload neither repeats nor misses one; the first poll only learns the cursor.
(function () {
  "use strict";
  var POLL_MS = 5000;
  var OPT_IN = "textdesk.notify";  // localStorage: "on" once the agent opted in
  var CURSOR = "textdesk.notify.cursor";  // sessionStorage: the feed's cursor
  var timer = null;
  var busy = false;

  function supported() { return "Notification" in window; }
  function optedIn() { return localStorage.getItem(OPT_IN) === "on"; }
  function widget() { return document.getElementById("notify"); }
  function active() { return supported() && optedIn() && Notification.permission === "granted" && widget(); }

  function render() {
    var box = widget();
    if (!box || !supported()) { return; }
    var state = Notification.permission === "denied" ? "blocked" : (active() ? "disable" : "enable");
    box.querySelectorAll("[data-notify]").forEach(function (el) {
      el.hidden = el.getAttribute("data-notify") !== state;
    });
    box.hidden = false;
  }

  function show(item) {
    var n;
    try {
      n = new Notification(item.title, {
        body: item.body,
        tag: "textdesk-escalation-" + item.event_id,  // one per escalation, however many tabs poll
      });
    } catch (e) {
      return;  // some mobile browsers only notify from a service worker
    }
    n.onclick = function () {
      window.focus();
      window.location.assign(item.url);
      n.close();
    };
  }

  function poll() {
    var box = widget();
    if (!active() || busy) { return; }
    var since = sessionStorage.getItem(CURSOR);
    var url = box.getAttribute("data-feed") + (since === null ? "" : "?since=" + encodeURIComponent(since));
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, redirect: "error" })
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (feed) {
        if (!feed) { return; }
        if (since !== null) { feed.escalations.forEach(show); }
        sessionStorage.setItem(CURSOR, String(feed.cursor));
      })
      .catch(function () { /* signed out or offline: try again next time */ })
      .then(function () { busy = false; });
  }

  function start() {
    render();
    if (timer === null && active()) {
      poll();
      timer = window.setInterval(poll, POLL_MS);
    } else if (timer !== null && !active()) {
      window.clearInterval(timer);
      timer = null;
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#notify [data-notify]");
    if (!button) { return; }
    if (button.getAttribute("data-notify") === "disable") {
      localStorage.removeItem(OPT_IN);
      start();
      return;
    }
    Notification.requestPermission().then(function (permission) {
      if (permission === "granted") { localStorage.setItem(OPT_IN, "on"); }
      start();
    });
  });
  document.addEventListener("htmx:afterSettle", start);  // hx-boost swapped the page
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
