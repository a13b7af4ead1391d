// Progressive enhancement of the form pages (templates/_forms.html); every page works
// without this file. No texts of its own: the labels come from data- attributes that the
// page renders in its language.
(function () {
  "use strict";

  // A show/hide button beside each password field that asks for it.
  document.querySelectorAll("input[type=password][data-show-password]").forEach(function (input) {
    var show = input.getAttribute("data-show-password");
    var hide = input.getAttribute("data-hide-password");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "show-password";
    button.textContent = show;
    button.setAttribute("aria-pressed", "false");
    button.setAttribute("aria-controls", input.id);
    button.addEventListener("click", function () {
      var shown = input.type === "password";
      input.type = shown ? "text" : "password";
      button.textContent = shown ? hide : show;
      button.setAttribute("aria-pressed", shown ? "true" : "false");
    });
    var focused = document.activeElement === input;
    var wrap = document.createElement("div");
    wrap.className = "password-wrap";
    input.parentNode.insertBefore(wrap, input);
    wrap.appendChild(input);
    wrap.appendChild(button);
    if (focused) input.focus(); // moving the input took the autofocus away
  });

  // The error summary takes the focus (autofocus does too; this covers browsers that skip
  // autofocus on a non-input), and its links put the focus in the field, not only scroll.
  var summary = document.querySelector("[data-error-summary]");
  if (summary) {
    summary.focus();
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[href^='#']");
      if (!link) return;
      var input = document.getElementById(link.getAttribute("href").slice(1));
      if (!input) return;
      event.preventDefault();
      var label = document.querySelector("label[for='" + input.id + "']");
      var legend = input.closest("fieldset") && input.closest("fieldset").querySelector("legend");
      (legend || label || input).scrollIntoView();
      input.focus({ preventScroll: true });
    });
  }

  // A password must not stay readable in the page the form leaves behind.
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("input[data-show-password]").forEach(function (input) {
        input.type = "password";
      });
    });
  });
})();
