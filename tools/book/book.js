// The book's own page script (no dependencies): draws each plot with the local plotly once it is near
// the screen (the SVG stays as the fallback until then, and for readers without JavaScript), sizes
// sandboxed HTML outputs, and opens the folded solutions when a link points into them.
(function () {
  "use strict";
  function draw(fig) {
    if (fig.dataset.state || !window.Plotly) return;
    fig.dataset.state = "drawing";
    var spec = JSON.parse(fig.querySelector("script.plot-spec").textContent);
    var layout = Object.assign({}, spec.layout || {});
    var width = fig.clientWidth || layout.width || 720;
    var ratio = (layout.height || 420) / (layout.width || 720);
    delete layout.width;
    layout.autosize = true;
    layout.height = Math.max(260, Math.min(layout.height || 420, Math.round(width * Math.max(ratio, 0.62))));
    if (width < 560) {
      // a phone: the legend goes under the plot (beside it, it would squeeze the axes), smaller titles
      layout.margin = { l: 50, r: 10, t: 40, b: 40 };
      layout.legend = Object.assign({}, layout.legend, { orientation: "h", x: 0, xanchor: "left", y: -0.22, yanchor: "top" });
      var title = typeof layout.title === "string" ? { text: layout.title } : Object.assign({}, layout.title);
      title.font = Object.assign({}, title.font, { size: 12 });
      layout.title = title;
      layout.font = Object.assign({}, layout.font, { size: 11 });
      layout.height += 60;
    }
    var div = document.createElement("div");
    div.className = "plot-live";
    fig.appendChild(div);
    window.Plotly.newPlot(div, spec.data, layout, { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["sendDataToCloud"] })
      .then(function () { fig.classList.add("drawn"); fig.dataset.state = "drawn"; })
      .catch(function (e) { fig.dataset.state = "failed"; div.remove(); console.warn("plot " + fig.dataset.figure + ": " + e); });
  }
  var figs = Array.prototype.slice.call(document.querySelectorAll("figure.plot"));
  if (figs.length && window.Plotly) {
    if ("IntersectionObserver" in window) {
      var io = new IntersectionObserver(function (entries) {
        entries.forEach(function (e) { if (e.isIntersecting) { io.unobserve(e.target); draw(e.target); } });
      }, { rootMargin: "600px 0px" });
      figs.forEach(function (f) { io.observe(f); });
    } else figs.forEach(draw);
  }
  window.bookDrawAllPlots = function () { figs.forEach(draw); };

  Array.prototype.forEach.call(document.querySelectorAll("iframe.out.html"), function (f) {
    function fit() {
      try {
        var doc = f.contentDocument;
        if (!doc || !doc.documentElement) return;
        f.style.height = "0px"; // measure the content, not the frame's default 150 px
        f.style.height = (doc.documentElement.scrollHeight + 2) + "px";
      } catch (e) {}
    }
    f.addEventListener("load", fit);
    fit();
  });

  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id && document.getElementById(id);
    for (var p = el; p; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();
