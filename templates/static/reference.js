/* Hutch API reference: start Swagger UI on this gateway's /openapi.json.
 *
 * A file of its own, not an inline script, so the page keeps a Content-Security-Policy that
 * allows scripts from the gateway only.  The page names the document's URL (under the gateway's
 * mount point) in the data-openapi-url attribute of #swagger-ui.
 */
(function () {
  "use strict";

  var root = document.getElementById("swagger-ui");
  if (!root || typeof SwaggerUIBundle !== "function") {
    return;
  }
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    deepLinking: true,
    validatorUrl: null, // never ask another site to validate the document
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
