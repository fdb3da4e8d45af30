"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const params = new URLSearchParams(location.search);
  const next = params.get("next");
  if (next && next.startsWith("/") && !next.startsWith("//")) document.getElementById("next").value = next;
  const error = params.get("error");
  if (error) {
    const box = document.getElementById("error");
    box.hidden = false;
    box.textContent = error === "token" ? "Wrong token." : "The form expired; try again.";
  }
});
