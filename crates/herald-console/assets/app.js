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

  // One explicit "every …" choice beside single picks: ticking an item picks
  // "only the ones I pick", and choosing "every" clears the ticks (the
  // server ignores them then, so they must not look chosen).
  function exclusive(form, mode, item) {
    var every = form.querySelector("input[name=" + mode + "][value=all]");
    var only = form.querySelector("input[name=" + mode + "][value=selected]");
    if (!every || !only) return;
    every.addEventListener("change", function () {
      if (!every.checked) return;
      form.querySelectorAll("input[name=" + item + "]").forEach(function (input) {
        input.checked = false;
      });
      form.dispatchEvent(new Event("picks-changed"));
    });
    form.addEventListener("change", function (event) {
      if (event.target.name === item && event.target.checked) only.checked = true;
    });
  }
  document.querySelectorAll("form.endpoint-editor").forEach(function (form) {
    exclusive(form, "devices_mode", "device");
    exclusive(form, "events_mode", "event_type");
  });

  // The device picker: channel tabs over the per-channel lists (every
  // checkbox stays in the form, so switching tabs keeps selections), search
  // within the current channel, bulk buttons, and chips of what is selected.
  document.querySelectorAll("[data-device-picker]").forEach(function (picker) {
    var form = picker.closest("form");
    var tabList = picker.querySelector("[role=tablist]");
    var tools = picker.querySelector(".picker-tools");
    var search = picker.querySelector("#device-search");
    var chips = picker.querySelector("#device-chips");
    var chipList = chips.querySelector("ul");
    var tabs = Array.prototype.slice.call(picker.querySelectorAll("[data-tab]"));
    var panels = Array.prototype.slice.call(picker.querySelectorAll("[data-panel]"));
    var current = null;
    tabList.hidden = false;
    tools.hidden = false;
    panels.forEach(function (panel) {
      panel.setAttribute("role", "tabpanel");
      panel.setAttribute("aria-labelledby", "tab-" + panel.getAttribute("data-panel"));
      var legend = panel.querySelector("legend");
      if (legend) legend.classList.add("visually-hidden");
    });
    function boxesOf(panel) {
      return Array.prototype.slice.call(panel.querySelectorAll("input[name=device]"));
    }
    function allBoxes() {
      return Array.prototype.slice.call(picker.querySelectorAll("input[name=device]"));
    }
    function currentPanel() {
      return picker.querySelector("[data-panel='" + current + "']");
    }
    function filter() {
      var query = search.value.trim().toLowerCase();
      var panel = currentPanel();
      var shown = 0;
      boxesOf(panel).forEach(function (box) {
        var label = box.closest("label");
        var match = !query || label.textContent.toLowerCase().indexOf(query) !== -1;
        label.hidden = !match;
        if (match) shown += 1;
      });
      var none = panel.querySelector(".no-match");
      if (none) none.hidden = shown > 0 || boxesOf(panel).length === 0;
    }
    function show(slug, focus) {
      current = slug;
      tabs.forEach(function (tab) {
        var on = tab.getAttribute("data-tab") === slug;
        tab.setAttribute("aria-selected", on ? "true" : "false");
        tab.tabIndex = on ? 0 : -1;
        if (on && focus) tab.focus();
      });
      panels.forEach(function (panel) {
        panel.hidden = panel.getAttribute("data-panel") !== slug;
      });
      filter();
    }
    function sync() {
      var checked = allBoxes().filter(function (box) { return box.checked; });
      chipList.textContent = "";
      checked.forEach(function (box) {
        var item = document.createElement("li");
        var chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip";
        chip.setAttribute("data-remove", box.value);
        var hidden = document.createElement("span");
        hidden.className = "visually-hidden";
        hidden.textContent = "Remove ";
        chip.appendChild(hidden);
        chip.appendChild(document.createTextNode(box.getAttribute("data-name") + " "));
        var cross = document.createElement("span");
        cross.setAttribute("aria-hidden", "true");
        cross.textContent = "×";
        chip.appendChild(cross);
        item.appendChild(chip);
        chipList.appendChild(item);
      });
      chips.hidden = checked.length === 0;
      tabs.forEach(function (tab) {
        var slug = tab.getAttribute("data-tab");
        var boxes = allBoxes().filter(function (box) { return box.getAttribute("data-channel") === slug; });
        var on = boxes.filter(function (box) { return box.checked; }).length;
        tab.querySelector("[data-tab-count]").textContent = on + "/" + boxes.length;
      });
      form.dispatchEvent(new Event("channels-changed"));
    }
    tabs.forEach(function (tab, index) {
      tab.addEventListener("click", function () { show(tab.getAttribute("data-tab"), false); });
      tab.addEventListener("keydown", function (event) {
        var next = null;
        if (event.key === "ArrowRight") next = tabs[(index + 1) % tabs.length];
        if (event.key === "ArrowLeft") next = tabs[(index + tabs.length - 1) % tabs.length];
        if (event.key === "Home") next = tabs[0];
        if (event.key === "End") next = tabs[tabs.length - 1];
        if (!next) return;
        event.preventDefault();
        show(next.getAttribute("data-tab"), true);
      });
    });
    ["input", "change", "search"].forEach(function (name) { search.addEventListener(name, filter); });
    // Enter in the search box filters; it must not submit the form.
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") event.preventDefault();
    });
    picker.querySelectorAll("[data-pick]").forEach(function (button) {
      button.addEventListener("click", function () {
        var how = button.getAttribute("data-pick");
        boxesOf(currentPanel()).forEach(function (box) {
          if (how === "all") box.checked = true;
          if (how === "filtered" && !box.closest("label").hidden) box.checked = true;
          if (how === "clear") box.checked = false;
        });
        if (how !== "clear" && boxesOf(currentPanel()).some(function (box) { return box.checked; })) {
          var only = form.querySelector("input[name=devices_mode][value=selected]");
          if (only) only.checked = true;
        }
        sync();
      });
    });
    chipList.addEventListener("click", function (event) {
      var chip = event.target.closest("[data-remove]");
      if (!chip) return;
      var id = chip.getAttribute("data-remove");
      allBoxes().forEach(function (box) { if (box.value === id) box.checked = false; });
      var next = chip.closest("li").nextElementSibling || chip.closest("li").previousElementSibling;
      sync();
      var focusTo = next && chipList.querySelector("[data-remove='" + next.querySelector("[data-remove]").getAttribute("data-remove") + "']");
      (focusTo || search).focus();
    });
    picker.addEventListener("change", sync);
    form.addEventListener("picks-changed", sync);
    var first = allBoxes().filter(function (box) { return box.checked; })[0]
      || allBoxes()[0];
    show(first ? first.getAttribute("data-channel") : tabs[0].getAttribute("data-tab"), false);
    sync();
  });

  // Events follow the channels of the picked devices: one no picked device
  // produces is hidden and left out of the form (its tick is kept for when
  // it comes back).
  document.querySelectorAll("form.endpoint-editor").forEach(function (form) {
    var hint = form.querySelector("[data-events-hint]");
    var options = Array.prototype.slice.call(form.querySelectorAll(".event-option[data-channels]"));
    var names = { whatsapp: "WhatsApp", telegram: "Telegram", waba: "WABA" };
    function update() {
      var every = form.querySelector("input[name=devices_mode][value=all]");
      var picked = Array.prototype.filter.call(form.querySelectorAll("input[name=device]"), function (box) {
        return box.checked;
      });
      var channels = null;
      if (!(every && every.checked) && picked.length > 0) {
        channels = {};
        picked.forEach(function (box) { channels[box.getAttribute("data-channel")] = true; });
      }
      options.forEach(function (option) {
        var produced = !channels || option.getAttribute("data-channels").split(" ").some(function (channel) {
          return channels[channel];
        });
        option.hidden = !produced;
        option.querySelector("input").disabled = !produced;
      });
      if (hint) {
        hint.textContent = channels
          ? "Showing the events " + Object.keys(channels).map(function (channel) { return names[channel] || channel; }).join(" and ") + " devices produce."
          : "Showing every event. Pick devices to see only what their channels produce.";
      }
    }
    form.addEventListener("channels-changed", update);
    form.addEventListener("change", update);
    update();
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

  // Logs: "Follow live" prepends each new attempt (server-sent events,
  // rows rendered by the server) until it is pressed again.
  var live = document.getElementById("live-toggle");
  if (live && window.EventSource) {
    var source = null;
    var liveStatus = document.getElementById("live-status");
    live.hidden = false;
    live.addEventListener("click", function () {
      if (source) {
        source.close();
        source = null;
        live.removeAttribute("data-connected");
        live.setAttribute("aria-pressed", "false");
        live.textContent = "Follow live";
        liveStatus.textContent = "Stopped following new attempts.";
        return;
      }
      source = new EventSource(live.getAttribute("data-live-url"));
      live.setAttribute("aria-pressed", "true");
      live.textContent = "Stop following";
      liveStatus.textContent = "Following new attempts as they happen.";
      source.addEventListener("attempt", function (event) {
        var table = document.getElementById("attempts-live");
        var empty = document.querySelector(".logs-empty");
        if (empty) empty.hidden = true;
        table.hidden = false;
        table.querySelector("tbody").insertAdjacentHTML("afterbegin", event.data);
      });
      source.addEventListener("error", function () {
        // EventSource reconnects by itself; say so while it does.
        if (source && source.readyState === EventSource.CONNECTING) {
          liveStatus.textContent = "Reconnecting…";
        }
      });
      source.addEventListener("open", function () {
        live.setAttribute("data-connected", "true");
        liveStatus.textContent = "Following new attempts as they happen.";
      });
    });
  }

  // A refused form moves focus to what went wrong.
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
