// Herald console: small enhancements. Every page works without this file.
(function () {
  "use strict";

  // Copy buttons: hidden in the HTML, shown only where they can work.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    button.hidden = false;
    function copied() {
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
    }
    function selectText() {
      var range = document.createRange();
      range.selectNodeContents(target);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      try {
        if (document.execCommand("copy")) copied();
      } catch (error) {
        // The text stays selected for a manual copy.
      }
    }
    button.addEventListener("click", function () {
      var text = target.textContent.trim();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(copied, selectText);
      } else {
        selectText();
      }
    });
  });

  // "Select all" checkboxes for a group of checkboxes.
  document.querySelectorAll("[data-select-all]").forEach(function (box) {
    var group = document.getElementById(box.getAttribute("data-select-all"));
    if (!group) return;
    var label = box.closest(".select-all");
    if (label) label.hidden = false;
    function items() {
      return Array.prototype.filter.call(
        group.querySelectorAll("input[type=checkbox]"),
        function (input) { return !input.hasAttribute("data-select-all"); }
      );
    }
    function sync() {
      var list = items();
      var checked = list.filter(function (input) { return input.checked; }).length;
      box.checked = list.length > 0 && checked === list.length;
      box.indeterminate = checked > 0 && checked < list.length;
    }
    box.addEventListener("change", function () {
      items().forEach(function (input) { input.checked = box.checked; });
    });
    group.addEventListener("change", function (event) {
      if (event.target !== box) sync();
    });
    sync();
  });

  // "All devices" and ticking single devices exclude each other (the
  // server lets "all" win when both arrive).
  document.querySelectorAll("[data-all-of]").forEach(function (all) {
    var fieldset = all.closest("fieldset");
    if (!fieldset) return;
    var selector = "input[name=" + all.getAttribute("data-all-of") + "]";
    all.addEventListener("change", function () {
      if (!all.checked) return;
      fieldset.querySelectorAll(selector + ", [data-select-all]").forEach(function (input) {
        input.checked = false;
        input.indeterminate = false;
      });
    });
    fieldset.addEventListener("change", function (event) {
      if (event.target === all) return;
      var any = Array.prototype.some.call(fieldset.querySelectorAll(selector), function (input) {
        return input.checked;
      });
      if (any) all.checked = false;
    });
  });

  // Slow forms (a test delivery waits for the receiver) say they are busy.
  document.querySelectorAll("form[data-busy]").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (!button) return;
      button.setAttribute("aria-busy", "true");
      button.textContent = form.getAttribute("data-busy");
      window.setTimeout(function () { button.disabled = true; }, 0);
    });
  });

  // A refused form moves focus to what went wrong.
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
