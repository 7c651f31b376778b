// Live parts: the WhatsApp connection card (and its QR code) refreshes every 3 seconds.
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
        if (fresh) el.replaceWith(fresh);
      })
      .catch(function () {});
  }
  setInterval(refresh, 3000);
})();
