// Starts Swagger UI on the host's docs page (host/src/openapi/docs_page.rs). The document's
// URL comes from the page (data-url), so this file is the same for every config and can be
// cached for good; no inline script, so the page works under a strict Content-Security-Policy.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No badge fetched from validator.swagger.io: the page makes no request off this host.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
  });
});
