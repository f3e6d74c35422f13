"use strict";
// Accept an invitation: the code is the link's fragment, which no server ever receives.

const code = window.location.hash.slice(1);
// Out of the address bar (and of history) once read.
window.history.replaceState(null, "", window.location.pathname);
if (!code) {
  document.getElementById("accept-error").textContent =
    "This link has no invitation code. Open the link from your invitation again.";
}

onSubmit(
  "accept",
  "accept-error",
  async (form) => {
    const username = form.username.value.trim().toLowerCase();
    const password = form.password.value;
    await api("POST", API.acceptInvite, { code, username, password });
    await api("POST", API.session, { username, password });
    window.location.assign("/portal");
  },
  (failure) =>
    failure.status === 410
      ? "This invitation was used already or has expired. Ask for a new one."
      : problemText(failure),
);
