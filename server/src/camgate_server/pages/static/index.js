"use strict";
// Sign in, then go where the account belongs (or to ?next=, a path on this server only).

function destination(account) {
  const next = new URLSearchParams(window.location.search).get("next");
  if (next && next.startsWith("/") && !next.startsWith("//") && !next.includes("\\")) return next;
  return account.role === "owner" ? "/portal" : "/console";
}

(async () => {
  const account = await loadSession();
  if (account) window.location.replace(destination(account));
})();

document.getElementById("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("sign-in-error");
  error.textContent = "";
  try {
    const session = await api("POST", API.session, {
      username: form.username.value.trim().toLowerCase(),
      password: form.password.value,
    });
    window.location.assign(destination(session.account));
  } catch (failure) {
    error.textContent = failure.status === 401 ? "Wrong username or password." : problemText(failure);
  }
});
