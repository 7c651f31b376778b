// Live parts: the WhatsApp connection card (and its QR code) refreshes every 3 seconds;
// once WhatsApp is connected the pair-code form goes.
(function () {
  function refresh() {
    var el = document.querySelector("[data-live]");
    if (!el) return;
    fetch(el.getAttribute("data-live"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var box = document.createElement("div");
        box.innerHTML = html.trim();
        var fresh = box.firstElementChild;
        if (!fresh) return;
        el.replaceWith(fresh);
        // Linked meanwhile (the QR scanned): the pair-code form has nothing left to do.
        var pair = document.getElementById("pair");
        if (pair && fresh.classList.contains("ok")) pair.remove();
      })
      .catch(function () {});
  }
  setInterval(refresh, 3000);
})();

// Forms that take a while (sending as the business): show the work in progress, and keep
// the owner from sending twice. A failed send comes back as the page with the text kept.
(function () {
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var busy = form.getAttribute && form.getAttribute("data-busy");
    if (!busy || event.defaultPrevented) return;
    form.setAttribute("aria-busy", "true");
    form.querySelectorAll("textarea").forEach(function (t) { t.readOnly = true; });
    form.querySelectorAll("button").forEach(function (b) {
      b.disabled = true;
      b.textContent = busy;
    });
  });
})();

// The number switcher in the header: choosing a number opens the same page of that number.
(function () {
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) el.form.submit();
  });
})();
