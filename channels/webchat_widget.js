/* textdesk web chat widget: one <script src=".../webchat/widget.js" async></script> tag, no build.
   Talks to the textdesk server it was loaded from: POST /webchat/session, /messages, /phone and
   GET /webchat/stream (server-sent events), polling /webchat/messages where EventSource is absent.
   Bodies are text/plain JSON so a page on another origin needs no CORS preflight. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = new URL(script ? script.src : "/webchat/widget.js", location.href).origin;
  var KEY = "textdesk.webchat.token";
  var token = null, last = 0, seen = {}, stream = null;

  function post(path, data) {
    data = data || {};
    data.token = token;
    return fetch(base + "/webchat/" + path, {
      method: "POST", headers: { "Content-Type": "text/plain" }, body: JSON.stringify(data)
    }).then(function (r) { return r.json().then(function (j) { j._status = r.status; return j; }); });
  }

  var css = "#td-chat{position:fixed;right:16px;bottom:16px;z-index:2147483000;font:15px/1.4 system-ui,sans-serif}" +
    "#td-chat button{font:inherit;cursor:pointer}" +
    "#td-open{background:#1f4e79;color:#fff;border:0;border-radius:24px;padding:12px 18px}" +
    "#td-panel{display:none;flex-direction:column;width:min(360px,calc(100vw - 32px));height:min(520px,calc(100vh - 96px));" +
    "background:#fff;border:1px solid #ccd;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.15);overflow:hidden}" +
    "#td-panel.open{display:flex}#td-head{background:#1f4e79;color:#fff;padding:10px 12px;display:flex;justify-content:space-between}" +
    "#td-head button{background:none;border:0;color:#fff}" +
    "#td-log{flex:1;overflow-y:auto;padding:10px;display:flex;flex-direction:column;gap:6px}" +
    ".td-m{max-width:80%;padding:7px 10px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}" +
    ".td-you{align-self:flex-end;background:#1f4e79;color:#fff}.td-bot,.td-staff{align-self:flex-start;background:#eef1f5;color:#111}" +
    ".td-staff{border-left:3px solid #2e7d32}" +
    "#td-form{display:flex;border-top:1px solid #dde}#td-text{flex:1;border:0;padding:10px;font:inherit}" +
    "#td-send{border:0;background:#1f4e79;color:#fff;padding:0 14px}" +
    "#td-sms{border-top:1px solid #dde;padding:8px 10px;font-size:13px}#td-sms input[type=tel]{width:60%}";

  var root = document.createElement("div");
  root.id = "td-chat";
  root.innerHTML = "<style>" + css + "</style>" +
    '<button id="td-open" type="button" aria-expanded="false" aria-controls="td-panel">Chat with us</button>' +
    '<section id="td-panel" role="dialog" aria-label="Chat">' +
    '<div id="td-head"><strong id="td-title">Chat</strong><button type="button" id="td-close" aria-label="Close chat">×</button></div>' +
    '<div id="td-log" role="log" aria-live="polite"></div>' +
    '<details id="td-sms"><summary>Continue by text message</summary>' +
    '<form id="td-phone-form"><label>Mobile number <input id="td-phone" type="tel" autocomplete="tel" required></label>' +
    '<p><label><input id="td-consent" type="checkbox" required> <span id="td-consent-text">I agree to get text messages about my appointments at this number. Msg &amp; data rates may apply. Reply STOP to opt out.</span></label></p>' +
    '<button type="submit">Save number</button> <span id="td-phone-status" role="status"></span></form></details>' +
    '<form id="td-form"><label for="td-text" style="position:absolute;left:-9999px">Message</label>' +
    '<input id="td-text" autocomplete="off" maxlength="1600" placeholder="Type a message"><button id="td-send" type="submit">Send</button></form>' +
    "</section>";

  function $(id) { return root.querySelector("#" + id); }

  function show(m) {
    if (seen[m.id]) return;
    seen[m.id] = true;
    last = Math.max(last, m.id);
    var div = document.createElement("div");
    div.className = "td-m td-" + m.from;
    div.setAttribute("data-from", m.from);
    div.textContent = m.text;
    $("td-log").appendChild(div);
    $("td-log").scrollTop = $("td-log").scrollHeight;
  }

  function listen() {
    if (stream || !token) return;
    if (window.EventSource) {
      stream = new EventSource(base + "/webchat/stream?token=" + encodeURIComponent(token) + "&after=" + last);
      stream.addEventListener("chat", function (e) { show(JSON.parse(e.data)); });
    } else {
      stream = setInterval(function () {
        fetch(base + "/webchat/messages?token=" + encodeURIComponent(token) + "&after=" + last)
          .then(function (r) { return r.json(); })
          .then(function (j) { (j.messages || []).forEach(show); });
      }, 3000);
    }
  }

  function start() {
    try { token = localStorage.getItem(KEY); } catch (e) { token = null; }
    return post("session").then(function (j) {
      token = j.token;
      try { localStorage.setItem(KEY, token); } catch (e) { /* private mode: this page only */ }
      if (j.business) $("td-title").textContent = j.business;
      if (j.consent_text) $("td-consent-text").textContent = j.consent_text;
      listen();
    });
  }

  function id() {
    return (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
  }

  function send(text) {
    var clientId = id();
    var attempt = function (n) {  // the same client_id on a retry: the server answers it once
      return post("messages", { text: text, client_id: clientId }).then(function (j) {
        (j.messages || []).forEach(show);
      }).catch(function () { if (n < 3) return new Promise(function (r) { setTimeout(r, 1000 * n); }).then(function () { return attempt(n + 1); }); });
    };
    return attempt(1);
  }

  function init() {
    document.body.appendChild(root);
    var ready = null;
    $("td-open").addEventListener("click", function () {
      $("td-panel").classList.add("open");
      $("td-open").style.display = "none";
      $("td-open").setAttribute("aria-expanded", "true");
      ready = ready || start();
      $("td-text").focus();
    });
    $("td-close").addEventListener("click", function () {
      $("td-panel").classList.remove("open");
      $("td-open").style.display = "";
      $("td-open").setAttribute("aria-expanded", "false");
    });
    $("td-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var text = $("td-text").value.trim();
      if (!text) return;
      $("td-text").value = "";
      (ready || (ready = start())).then(function () { return send(text); });
    });
    $("td-phone-form").addEventListener("submit", function (e) {
      e.preventDefault();
      (ready || (ready = start())).then(function () {
        return post("phone", { phone: $("td-phone").value, consent: $("td-consent").checked });
      }).then(function (j) {
        $("td-phone-status").textContent = j.ok ? "Saved. We'll text you there." : (j.error || "Could not save");
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
