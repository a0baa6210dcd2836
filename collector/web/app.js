// The dashboard's little script: the pages are complete without it (server-rendered). It only
// submits a filter form when a choice changes, and shows each time in the reader's own zone.
// It never builds markup from strings (the page's policy requires Trusted Types): text only.
"use strict";

for (const select of document.querySelectorAll("form.filters select")) {
  select.addEventListener("change", () => select.form.requestSubmit());
}

const local = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});
for (const t of document.querySelectorAll("time[datetime]")) {
  const when = new Date(t.getAttribute("datetime"));
  if (!Number.isNaN(when.getTime()) && t.getAttribute("datetime").length > 10) {
    t.title = t.getAttribute("datetime");
    t.textContent = local.format(when);
  }
}

// The page says whether it is wider than the window (it must not be, down to a phone's width:
// wide tables scroll in their own box), and that the script ran; the layout tests read both.
const root = document.documentElement;
root.dataset.overflow = root.scrollWidth > root.clientWidth ? "x" : "none";
root.dataset.ready = "1";
