// Loaded before Redoc's bundle on /api/redoc/. Redoc's sidebar ends with "API docs by Redocly" and
// an <img> whose src is https://cdn.redoc.ly/redoc/logo-mini.svg: an outside request that the
// site's CSP (img-src 'self' data:) refuses and the browser reports as a violation. So images
// never get a src on that host: their <img> is hidden instead (Redoc's React sets src as a
// property; setAttribute is covered too). Every other src is set as given.
(function () {
  "use strict";
  var OUTSIDE = "https://cdn.redoc.ly/";
  var refused = function (value) {
    return String(value).indexOf(OUTSIDE) === 0;
  };
  var src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true,
    enumerable: src.enumerable,
    get: src.get,
    set: function (value) {
      if (refused(value)) {
        this.hidden = true;
        return;
      }
      src.set.call(this, value);
    },
  });
  var setAttribute = Element.prototype.setAttribute;
  HTMLImageElement.prototype.setAttribute = function (name, value) {
    if (String(name).toLowerCase() === "src" && refused(value)) {
      this.hidden = true;
      return undefined;
    }
    return setAttribute.call(this, name, value);
  };
})();
