// The map: pointing at a post highlights its neighbour edges and the posts they reach;
// the "edges" box hides or shows every edge. A click follows the point's link to its card.
(function () {
  const svg = document.querySelector("#atlas svg");
  if (!svg) return;
  const edges = [...svg.querySelectorAll("line.edge")];
  const byPoint = new Map();
  for (const e of edges) {
    for (const end of [e.dataset.a, e.dataset.b]) {
      if (!byPoint.has(end)) byPoint.set(end, []);
      byPoint.get(end).push(e);
    }
  }
  const circles = [...svg.querySelectorAll("circle")];
  const label = document.getElementById("hovered");
  function clear() {
    svg.querySelectorAll(".on").forEach(x => x.classList.remove("on"));
  }
  for (const c of circles) {
    c.addEventListener("mouseenter", () => {
      clear();
      c.classList.add("on");
      const mine = (byPoint.get(c.dataset.i) || []).filter(e => e.dataset.a === c.dataset.i);
      for (const e of mine) {
        e.classList.add("on");
        const other = circles[Number(e.dataset.b)];
        if (other) other.classList.add("on");
      }
      if (label) label.textContent = c.dataset.post + ": " + mine.length + " neighbour edge(s) drawn";
    });
    c.addEventListener("mouseleave", clear);
  }
  const box = document.getElementById("show-edges");
  if (box) box.addEventListener("change", () => {
    document.getElementById("edges").style.display = box.checked ? "" : "none";
  });
})();
