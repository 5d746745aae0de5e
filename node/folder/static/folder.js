/* The folder's charts: each .vl-chart element names a JSON block holding a
   Vega-Lite spec (data included, made on the server for the signed-in
   audience) and is drawn by the vendored vega-embed as SVG. Expressions run
   through vega-interpreter, never eval, so the CSP (script-src 'self') holds. */
(function () {
  'use strict';
  function draw(el) {
    var block = document.getElementById(el.getAttribute('data-spec'));
    if (!block) { return; }
    var spec = JSON.parse(block.textContent);
    window.vegaEmbed(el, spec, {
      renderer: 'svg',
      actions: false,
      defaultStyle: false,
      ast: true,
      expr: window.vegaInterpreter.expressionInterpreter,
      tooltip: { disableDefaultStyle: true }
    }).then(function (result) {
      el.vegaView = result.view;
      el.setAttribute('data-rendered', 'true');
    }).catch(function (err) {
      el.setAttribute('data-rendered', 'error');
      el.textContent = 'The chart could not be drawn: ' + err.message;
      console.error(err);
    });
  }
  document.querySelectorAll('.vl-chart').forEach(draw);
}());
