// The reference page: ask for the API token, load the OpenAPI document with it, hand both to Swagger UI.
(function () {
  "use strict";
  var KEY = "sendtrail.apiToken";
  var form = document.getElementById("token-form");
  var input = document.getElementById("token");
  var notice = document.getElementById("notice");
  var forget = document.getElementById("forget");

  function ask(message) {
    sessionStorage.removeItem(KEY);
    forget.hidden = true;
    form.hidden = false;
    notice.textContent = message || "";
    input.focus();
  }

  function open(token) {
    fetch("api/openapi.json", {headers: {Authorization: "Bearer " + token}, credentials: "same-origin"})
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          throw new Error("The token was refused.");
        }
        if (!response.ok) {
          throw new Error("The document could not be loaded (HTTP " + response.status + ").");
        }
        return response.json();
      })
      .then(function (spec) {
        sessionStorage.setItem(KEY, token);
        form.hidden = true;
        forget.hidden = false;
        notice.textContent = "";
        var ui = window.SwaggerUIBundle({
          spec: spec,
          dom_id: "#swagger-ui",
          deepLinking: false,
          validatorUrl: null,
          tryItOutEnabled: false,
          requestInterceptor: function (request) {
            request.headers.Authorization = "Bearer " + token;
            return request;
          },
          onComplete: function () { ui.preauthorizeApiKey("bearerAuth", token); }
        });
      })
      .catch(function (error) { ask(error.message); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (input.value.trim()) { open(input.value.trim()); }
  });
  forget.addEventListener("click", function () {
    document.getElementById("swagger-ui").textContent = "";
    ask("");
  });

  var saved = sessionStorage.getItem(KEY);
  if (saved) { open(saved); } else { ask(""); }
}());
