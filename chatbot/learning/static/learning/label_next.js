// "Label next": the buttons and the keyboard (1-9 choose a team, Enter label, S skip, X exclude).
(function () {
  var form = document.getElementById("label-form");
  if (!form) { return; }
  var action = document.getElementById("label-action");
  function send(name) {
    if (name === "label" && !form.querySelector("input[name=team]:checked")) { return; }
    action.value = name;
    form.submit();
  }
  form.querySelectorAll("button[data-action]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      send(button.getAttribute("data-action"));
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var key = event.key;
    if (key >= "1" && key <= "9") {
      var choice = form.querySelector("label[data-key='" + key + "'] input");
      if (choice) { choice.checked = true; event.preventDefault(); }
    } else if (key === "Enter") {
      event.preventDefault();
      send("label");
    } else if (key === "s" || key === "S") {
      event.preventDefault();
      send("skip");
    } else if (key === "x" || key === "X") {
      event.preventDefault();
      send("exclude");
    }
  });
})();
