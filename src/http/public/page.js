// Refreshes the status section of the patient page every minute while it is visible.
// The page works without it: this only saves the patient a reload.
(function () {
  "use strict";
  var status = document.getElementById("status");
  if (!status || !window.fetch || !window.DOMParser) { return; }
  function refresh() {
    if (document.hidden) { return; }
    fetch(location.pathname + location.search.replace(/([?&])done=[^&]*&?/, "$1"), {
      credentials: "same-origin", cache: "no-store", redirect: "error"
    }).then(function (r) { return r.ok ? r.text() : null; }).then(function (text) {
      if (!text) { return; }
      var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("status");
      if (fresh) { status.innerHTML = fresh.innerHTML; }
    }).catch(function () { /* the next minute tries again */ });
  }
  setInterval(refresh, 60000);
})();
