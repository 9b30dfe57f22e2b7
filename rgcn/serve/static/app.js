// Drag and drop a photo onto the form's drop zone: the dropped file becomes the file input's
// file, so the form posts it as it would a chosen one. The page works without this script.
(function () {
  "use strict";
  var drop = document.getElementById("drop");
  var input = document.getElementById("image");
  var label = document.getElementById("drop-label");
  if (!drop || !input) { return; }
  function show(file) {
    label.textContent = file ? "Photo: " + file.name + " (" + Math.round(file.size / 1024) + " KB)" : "Drop a photo here, or choose one:";
  }
  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function (e) { e.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) {
    var files = e.dataTransfer && e.dataTransfer.files;
    if (!files || !files.length) { return; }
    var dt = new DataTransfer();
    dt.items.add(files[0]);
    input.files = dt.files;
    show(files[0]);
    drop.dataset.dropped = files[0].name;
  });
  input.addEventListener("change", function () { show(input.files[0]); });
})();
