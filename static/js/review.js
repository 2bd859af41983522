/* Keyboard use of the steward pages, no framework.
   Lists marked [data-keynav]: j / ↓ and k / ↑ move between the rows' links (Enter opens
   the focused one, natively). Buttons carry accesskeys (Alt+key, Alt+Shift+key on some
   browsers); the page says which. Keys typed into a field are left alone. */
(function () {
  "use strict";
  function links() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-keynav] a[data-row-link]"));
  }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var target = event.target;
    if (target && target.closest && target.closest("input, select, textarea, [contenteditable]")) return;
    var down = event.key === "j" || event.key === "ArrowDown";
    var up = event.key === "k" || event.key === "ArrowUp";
    if (!down && !up) return;
    var all = links();
    if (!all.length) return;
    var index = all.indexOf(document.activeElement);
    index = down ? Math.min(all.length - 1, index + 1) : Math.max(0, index < 0 ? 0 : index - 1);
    event.preventDefault();
    all[index].focus();
    all[index].closest("tr").scrollIntoView({ block: "nearest" });
  });
})();
