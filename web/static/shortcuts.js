// Keyboard shortcuts for the staff app (plain script, no build; loaded once, survives hx-boost).
//
// Inbox list:        j / k select the next / previous conversation, Enter opens it.
// Conversation page: r focuses the reply box, e resolves (submits the page's own Resolve form,
//                    CSRF token included), Escape leaves the reply box.
// Anywhere:          ? shows or hides the list of shortcuts.
// Keys typed into a text field are the field's, except Escape, which leaves it. After a canned
// reply is inserted, the caret goes to the end of the reply box.
(function () {
  "use strict";
  var SELECTED = "kb-selected";
  var HELP = [
    ["j / k", "Inbox: select the next / previous conversation"],
    ["Enter", "Inbox: open the selected conversation"],
    ["r", "Conversation: write a reply"],
    ["e", "Conversation: resolve"],
    ["Escape", "Leave the reply box; close this list"],
    ["?", "Show or hide this list"],
  ];
  var selectedHref = null;  // kept across the inbox's 3-second refreshes, which replace the rows

  function typing(el) {
    if (!el || !el.tagName) { return false; }
    var tag = el.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || el.isContentEditable;
  }

  function rows() {
    var body = document.getElementById("inbox-rows");
    if (!body) { return []; }
    return Array.prototype.filter.call(body.querySelectorAll("tr"), function (tr) {
      return tr.querySelector("a[href]");
    });
  }

  function mark() {
    rows().forEach(function (tr) {
      tr.classList.toggle(SELECTED, tr.querySelector("a[href]").getAttribute("href") === selectedHref);
    });
  }

  function move(step) {
    var list = rows();
    if (!list.length) { return false; }
    var at = -1;
    list.forEach(function (tr, i) { if (tr.classList.contains(SELECTED)) { at = i; } });
    var next = at < 0 ? 0 : Math.min(list.length - 1, Math.max(0, at + step));
    var link = list[next].querySelector("a[href]");
    selectedHref = link.getAttribute("href");
    mark();
    link.focus();
    list[next].scrollIntoView({ block: "nearest" });
    return true;
  }

  function open() {
    var row = document.querySelector("#inbox-rows tr." + SELECTED + " a[href]");
    if (!row) { return false; }
    row.click();  // hx-boost takes it from here
    return true;
  }

  function reply() {
    var box = document.getElementById("reply-body");
    if (!box) { return false; }
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
    return true;
  }

  function resolve() {
    var form = Array.prototype.find.call(document.querySelectorAll("form[action$='/resolve']"), function (f) {
      return /^\/inbox\/\d+\/resolve$/.test(f.getAttribute("action"));  // this conversation's, not a bulk one
    });
    if (!form) { return false; }
    form.requestSubmit();  // the same submit as clicking Resolve: hidden CSRF field, hx-boost
    return true;
  }

  function helpDialog() {
    var dialog = document.getElementById("kb-help");
    if (dialog) { return dialog; }
    dialog = document.createElement("dialog");
    dialog.id = "kb-help";
    dialog.className = "kb-help";
    dialog.setAttribute("aria-labelledby", "kb-help-title");
    var title = document.createElement("h2");
    title.id = "kb-help-title";
    title.textContent = "Keyboard shortcuts";
    var list = document.createElement("dl");
    HELP.forEach(function (item) {
      var key = document.createElement("dt");
      var kbd = document.createElement("kbd");
      kbd.textContent = item[0];
      key.appendChild(kbd);
      var what = document.createElement("dd");
      what.textContent = item[1];
      list.appendChild(key);
      list.appendChild(what);
    });
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "Close";
    close.addEventListener("click", function () { dialog.close(); });
    dialog.appendChild(title);
    dialog.appendChild(list);
    dialog.appendChild(close);
    return dialog;
  }

  function toggleHelp() {
    var dialog = helpDialog();
    if (dialog.open) {
      dialog.close();
    } else {
      document.body.appendChild(dialog);  // hx-boost replaces the body: attach it again each time
      dialog.showModal();
    }
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
      return;
    }
    var target = event.target;
    if (typing(target)) {
      if (event.key === "Escape") { target.blur(); }
      return;
    }
    var dialog = document.getElementById("kb-help");
    if (dialog && dialog.open && event.key !== "?") { return; }  // the dialog handles Escape itself
    var done = false;
    switch (event.key) {
      case "?": done = toggleHelp(); break;
      case "j": done = move(1); break;
      case "k": done = move(-1); break;
      case "Enter":
        // A focused link or button does its own thing on Enter.
        if (!target.closest || !target.closest("a[href], button")) { done = open(); }
        break;
      case "r": done = reply(); break;
      case "e": done = resolve(); break;
      default: break;
    }
    if (done) { event.preventDefault(); }
  });

  document.addEventListener("htmx:afterSettle", function () {
    mark();  // the inbox rows may have been refreshed
    // A canned reply was just inserted (the new reply box has autofocus): type on after it.
    var box = document.getElementById("reply-body");
    if (box && box.hasAttribute("autofocus")) {
      box.removeAttribute("autofocus");
      reply();
    }
  });
})();
